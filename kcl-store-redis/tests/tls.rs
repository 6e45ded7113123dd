//! `rediss://` with password auth, against a private TLS `redis-server`
//! whose certificate a throwaway CA signed (made here with the `openssl`
//! command). Needs feature `tls` and `KCL_TEST_REDIS_SERVER_BIN`.
#![cfg(feature = "tls")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, ShardId};
use kcl_store_redis::RedisStore;

const PASSWORD: &str = "kcl-tls-hunter2";

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command (scripts/test-all.sh installs it)");
    assert!(status.success(), "openssl {args:?} failed");
}

fn start(bin: &str) -> common::RedisProcess {
    let port = common::free_port();
    let port_arg = port.to_string();
    let mut server = common::RedisProcess::new(
        bin,
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    let dir = server.dir.clone();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=kcl-test-ca",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );
    server.spawn();
    server
}

#[tokio::test]
async fn rediss_with_a_password_round_trips() {
    let Some(bin) = server_from_env("KCL_TEST_REDIS_SERVER_BIN") else {
        return;
    };
    let server = start(&bin);
    let ca = std::fs::read(server.dir.join("ca.crt")).unwrap();
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}", server.port);

    let store = RedisStore::builder()
        .url(&url)
        .tls_root_certificate_pem(ca.clone())
        .application(random_application().as_str())
        .build()
        .await
        .expect("connect over TLS with the password");
    let debug = format!("{store:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("rediss://:***@127.0.0.1"), "{debug}");

    let shard = ShardId::new("shardId-000000000000").unwrap();
    let p = ExtendedSequenceNumber::at(
        "49590338271490256608559692538361571095921575989136588898"
            .parse()
            .unwrap(),
        3,
    );
    store.set_checkpoint(&shard, &p).await.unwrap();
    assert_eq!(store.get_checkpoint(&shard).await.unwrap(), Some(p));

    // A wrong password is refused, not retryable, and not shown.
    let wrong = format!("rediss://:not-{PASSWORD}@127.0.0.1:{}", server.port);
    let err = RedisStore::builder()
        .url(&wrong)
        .tls_root_certificate_pem(ca)
        .application("kcl-test-tls")
        .build()
        .await
        .expect_err("wrong password");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD), "{err:?}");

    // Plain TCP to a TLS port gets nowhere (and does not hang).
    let plain = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port);
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        RedisStore::builder()
            .url(&plain)
            .application("kcl-test-tls")
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .build(),
    )
    .await
    .expect("bounded");
    assert!(result.is_err(), "plain TCP to a TLS port must fail");
}
