//! One test binary for every server fixture: each test starts a real
//! server, proves it answers real requests in its own protocol, drops the
//! fixture and checks the process is gone and its port closed. A missing
//! server skips the test with the install command, except where CI or
//! TELEPORT_TEST_REQUIRE_SERVICES is set (then it fails).

mod azure;
mod common;
mod dynamodb;
mod etcd;
mod firestore;
mod gcs;
mod postgres;
mod s3;
