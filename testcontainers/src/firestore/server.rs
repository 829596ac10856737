//! The gRPC glue of the Firestore test server: a `tower::Service` that
//! dispatches `/google.firestore.v1.Firestore/<Method>` paths to the
//! handlers with `tonic::server::Grpc` and the prost codec, as tonic's
//! generated server code does, over gcloud-sdk's message types (so client
//! and server agree by construction). The server runs on its own thread and
//! Tokio runtime, so it outlives whatever runtime a test uses, and stops when
//! its handle is dropped.
//!
//! Methods served: Commit, BatchGetDocuments, RunQuery, BeginTransaction,
//! Rollback, Listen. Every other method answers UNIMPLEMENTED.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use futures::future::BoxFuture;
use gcloud_sdk::google::firestore::v1 as fs;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;
use tower::service_fn;

use super::listen;
use super::store::{MAX_REQUEST_BYTES, Store};

/// The gRPC service name.
pub const SERVICE_NAME: &str = "google.firestore.v1.Firestore";

/// The largest message the server decodes: above Firestore's 10 MiB request
/// limit, so that an oversized commit gets Firestore's INVALID_ARGUMENT
/// rather than a transport error.
const MAX_DECODE: usize = MAX_REQUEST_BYTES * 4;

#[derive(Clone)]
struct FirestoreService {
    store: Arc<Store>,
}

impl NamedService for FirestoreService {
    const NAME: &'static str = SERVICE_NAME;
}

fn grpc<T, U>() -> Grpc<ProstCodec<T, U>>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    Grpc::new(ProstCodec::default()).apply_max_message_size_config(Some(MAX_DECODE), None)
}

/// A unary handler: `f` runs on the store and answers at once.
fn unary<M, R>(
    store: &Arc<Store>,
    f: fn(&Store, &M) -> Result<R, Status>,
) -> impl tower::Service<Request<M>, Response = Response<R>, Error = Status, Future = Ready<Result<Response<R>, Status>>>
+ Clone {
    let store = store.clone();
    service_fn(move |r: Request<M>| ready(f(&store, r.get_ref()).map(Response::new)))
}

type Items<R> = futures::stream::Iter<std::iter::Map<std::vec::IntoIter<R>, fn(R) -> Result<R, Status>>>;
type Answered<R> = Ready<Result<Response<Items<R>>, Status>>;

/// A server-streaming handler whose answers are all computed at once.
fn streamed<M, R>(
    store: &Arc<Store>,
    f: fn(&Store, &M) -> Result<Vec<R>, Status>,
) -> impl tower::Service<Request<M>, Response = Response<Items<R>>, Error = Status, Future = Answered<R>> + Clone {
    let store = store.clone();
    service_fn(move |r: Request<M>| {
        ready(f(&store, r.get_ref()).map(|items| {
            let ok: fn(R) -> Result<R, Status> = Ok;
            Response::new(futures::stream::iter(items.into_iter().map(ok)))
        }))
    })
}

impl tower::Service<http::Request<Body>> for FirestoreService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let store = self.store.clone();
        let method = req.uri().path().strip_prefix(&format!("/{SERVICE_NAME}/")).map(str::to_string);
        Box::pin(async move {
            let response = match method.as_deref() {
                Some("Commit") => grpc().unary(unary(&store, Store::commit), req).await,
                Some("BeginTransaction") => {
                    let begin = |s: &Store, r: &fs::BeginTransactionRequest| {
                        s.begin_transaction(r).map(|transaction| fs::BeginTransactionResponse { transaction })
                    };
                    grpc().unary(unary(&store, begin), req).await
                }
                Some("Rollback") => grpc().unary(unary(&store, Store::rollback), req).await,
                Some("BatchGetDocuments") => grpc().server_streaming(streamed(&store, Store::batch_get), req).await,
                Some("RunQuery") => grpc().server_streaming(streamed(&store, Store::run_query), req).await,
                Some("Listen") => {
                    let svc = service_fn(move |r: Request<Streaming<fs::ListenRequest>>| {
                        ready(Ok::<_, Status>(Response::new(listen::serve(store.clone(), r.into_inner()))))
                    });
                    grpc().streaming(svc, req).await
                }
                _ => Status::unimplemented(format!(
                    "{} is not implemented by the Firestore test server (it serves Commit, BatchGetDocuments, \
                     RunQuery, BeginTransaction, Rollback and Listen)",
                    req.uri().path()
                ))
                .into_http(),
            };
            Ok(response)
        })
    }
}

/// A running Firestore test server; dropping it stops the server.
pub struct TestServer {
    addr: SocketAddr,
    store: Arc<Store>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish()
    }
}

impl TestServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> std::io::Result<TestServer> {
        TestServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts a server on `addr` (port 0 picks a free one).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<TestServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("firestore-test-server")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let service = FirestoreService { store: store.clone() };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("firestore-test-server".into()).spawn(move || {
            runtime.block_on(async move {
                let incoming = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut graceful = stopped.clone();
                let serve =
                    tonic::transport::Server::builder().serve_with_incoming_shutdown(service, incoming, async move {
                        let _ = graceful.wait_for(|s| *s).await;
                    });
                // A graceful shutdown waits for open streams (a client's
                // Listen never ends by itself): give them a moment, then go.
                let mut hard = stopped;
                let deadline = async move {
                    let _ = hard.wait_for(|s| *s).await;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                };
                tokio::select! {
                    served = serve => {
                        if let Err(e) = served {
                            eprintln!("firestore test server on {addr}: {e}");
                        }
                    }
                    _ = deadline => {}
                }
            });
            // Listen streams still open hold tasks; do not wait for them.
            runtime.shutdown_background();
        })?;
        ready_rx.recv().map_err(|_| std::io::Error::other("the server thread exited before it was ready"))??;
        Ok(TestServer { addr, store, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many documents the server holds (every project and database).
    pub fn document_count(&self) -> usize {
        self.store.len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
