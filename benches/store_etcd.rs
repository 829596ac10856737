//! etcd store throughput next to the raw etcd client doing the same work on
//! the same server, in one run: batched puts as 128-op transactions of the
//! same base64 values, a paged range scan, point gets and single puts.
//! The server is started by testcontainers/ (scripts/install-test-services.sh etcd).

mod common;

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use common::{Row, key, value};
use etcd_client::{Client, GetOptions, Txn, TxnOp};
use teleport::backend::Backend;
use teleport::backend::registry::{self, OpenOptions};
use teleport::config::StorageConfig;

struct Raw {
    put_batch: f64,
    scan: f64,
    gets: (usize, f64),
    puts: (usize, f64),
}

async fn raw(endpoint: &str, n: usize, cap: f64) -> Raw {
    let client = Client::connect([endpoint], None).await.expect("connect");
    let mut kv = client.kv_client().max_decoding_message_size(i32::MAX as usize);
    let v = base64::engine::general_purpose::STANDARD.encode(value());
    let full = |i: usize| format!("/raw/{}", key(i));
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(128) {
        let ops: Vec<_> = chunk.iter().map(|i| TxnOp::put(full(*i), v.clone(), None)).collect();
        kv.txn(Txn::new().and_then(ops)).await.expect("txn");
    }
    let put_batch = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut from, end) = (full(0).into_bytes(), b"/raw/bench/items0".to_vec());
    let mut count = 0;
    loop {
        let opts = GetOptions::new().with_range(end.clone()).with_limit(1000);
        let resp = kv.get(from.clone(), Some(opts)).await.expect("range");
        count += resp.kvs().len();
        match resp.kvs().last() {
            Some(last) if resp.kvs().len() == 1000 => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    assert_eq!(count, n);
    let scan = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut gets = 0;
    while gets < n && t.elapsed().as_secs_f64() < cap {
        kv.get(full(gets * 7919 % n), None).await.expect("get");
        gets += 1;
    }
    let gets = (gets, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut puts = 0;
    while puts < n && t.elapsed().as_secs_f64() < cap {
        kv.put(full(n + puts), v.clone(), None).await.expect("put");
        puts += 1;
    }
    let puts = (puts, t.elapsed().as_secs_f64());
    Raw { put_batch, scan, gets, puts }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = common::opts();
    let n = o.items;
    let etcd = testcontainers::etcd().await.expect("start etcd (scripts/install-test-services.sh etcd)");
    let mut rows = Vec::new();
    let r = raw(&etcd.endpoint, n, o.seconds).await;
    let raw_label = "etcd raw client (etcd-client, same server)";
    rows.push(Row::new(raw_label, "put_batch", n, r.put_batch, "128-put transactions, same base64 values"));
    rows.push(Row::new(raw_label, "range scan", n, r.scan, "paged Get, 1000 per page"));
    rows.push(Row::new(raw_label, "get", r.gets.0, r.gets.1, "point Get, one task"));
    rows.push(Row::new(raw_label, "put", r.puts.0, r.puts.1, "plain Put, one task"));

    let cfg: StorageConfig = serde_norway::from_str(&format!(
        "type: etcd\npeers: [{}]\nprefix: /teleport/\ninsecure: true\n",
        etcd.endpoint
    ))
    .expect("config");
    let b: Arc<dyn Backend> = registry::open(&cfg, OpenOptions::create()).await.expect("open etcd backend");
    let first = rows.len();
    common::workload("etcd store", b, &o, &mut rows).await;
    let ours = &mut rows[first..];
    common::ratio(ours, &["put_batch"], n as f64 / r.put_batch, "raw batched put");
    common::ratio(ours, &["range scan"], n as f64 / r.scan, "raw scan");
    common::ratio(ours, &["get"], r.gets.0 as f64 / r.gets.1, "raw get");
    common::ratio(ours, &["put", "put x16"], r.puts.0 as f64 / r.puts.1, "raw single put");
    common::print(&format!("etcd {} (Debian etcd-server, local process)", etcd.endpoint), &o, &rows);
}
