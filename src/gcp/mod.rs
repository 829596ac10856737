//! GOOGLE CLOUD connections shared by the stores that talk to Google Cloud
//! (a leaf: it may be used by `backend` and `events`, and uses nothing of
//! the project but its own dependencies). Today: the Firestore connection
//! ([`firestore`]), used by `backend::firestore` and `events::firestore`.

#[cfg(feature = "firestore")]
pub mod firestore;
