//! TLS (feature `tls`) over `sslmode=verify-full` to a private PostgreSQL
//! cluster whose certificate a throwaway CA signed (CA and server
//! certificate made here with the `openssl` command). The server refuses
//! every connection that is not TLS, so the store working proves it
//! spoke TLS; a certificate from another CA, or a name the certificate
//! does not carry, is refused. Needs `KCL_TEST_POSTGRES_BIN_DIR`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::{Cluster, is_root, run};
use kcl_core::testkit::conformance::random_application;
use kcl_core::testkit::server_from_env;
use kcl_core::{CheckpointStore, ExtendedSequenceNumber, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_postgres::PostgresStore;

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

/// A CA (`<name>.crt`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subject) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN=kcl test {name}"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
            "-days", "2", "-subj", &subject,
        ],
    );
}

/// `server.crt`/`server.key` for 127.0.0.1 (and no other name), signed
/// by `ca`.
fn make_server_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
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
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// A cluster with `ssl=on` that accepts TLS connections only.
fn tls_cluster(bin: PathBuf, certs: &Path) -> Cluster {
    let cert = certs.join("server.crt");
    let key = certs.join("server.key");
    let settings = [
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", cert.display()),
        format!("ssl_key_file={}", key.display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    Cluster::create_with(bin, &settings, |cluster| {
        std::fs::write(
            cluster.data().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_against_a_private_ca() {
    let Some(bin) = server_from_env("KCL_TEST_POSTGRES_BIN_DIR") else {
        return;
    };
    let certs = std::env::temp_dir().join(format!("kcl-pg-tls-{}", random_application()));
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "ca");
    make_ca(&certs, "other-ca");
    make_server_certificate(&certs, "ca");
    if is_root() {
        // The server runs as postgres and wants its key private to it.
        let mut chown = Command::new("chown");
        chown.arg("-R").arg("postgres:").arg(&certs);
        run(chown, "chown the certificates");
    }
    let mut chmod = Command::new("chmod");
    chmod.arg("600").arg(certs.join("server.key"));
    run(chmod, "chmod the server key");
    let cluster = tls_cluster(PathBuf::from(bin), &certs);

    let url = |host: &str, mode: &str, ca: &str| {
        format!(
            "postgres://postgres@{host}:{}/postgres?sslmode={mode}&sslrootcert={}",
            cluster.port,
            certs.join(format!("{ca}.crt")).display()
        )
    };
    let store = |url: String| async move {
        PostgresStore::builder()
            .url(url)
            .application(random_application().as_str())
            .acquire_timeout(Duration::from_secs(3))
            .build()
            .await
    };

    // verify-full with the CA that signed the server's certificate.
    let tls = store(url("127.0.0.1", "verify-full", "ca"))
        .await
        .expect("a verify-full store");
    let lease = Lease::new(
        ShardId::new("shardId-000000000000").unwrap(),
        ExtendedSequenceNumber::TrimHorizon,
    );
    assert!(tls.create_lease_if_absent(&lease).await.unwrap());
    let held = tls
        .take_lease(&lease, &WorkerId::new("w").unwrap())
        .await
        .unwrap();
    let at = ExtendedSequenceNumber::at("42".parse().unwrap(), 0);
    tls.update_checkpoint(&held, &at).await.unwrap();
    assert_eq!(
        tls.get_lease(&lease.shard_id)
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        at
    );
    tls.set_checkpoint(&lease.shard_id, &at).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(tls.pool())
        .await
        .unwrap();
    assert!(ssl, "the store's connection is TLS");

    // The server really refuses plaintext.
    let plain = store(format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port
    ))
    .await;
    assert!(plain.is_err(), "plaintext must be refused by pg_hba.conf");

    // Another CA's root: the certificate does not verify.
    let wrong_ca = store(url("127.0.0.1", "verify-full", "other-ca"))
        .await
        .expect_err("a certificate from an untrusted CA");
    assert!(
        format!("{wrong_ca:?}").contains("UnknownIssuer"),
        "{wrong_ca:?}"
    );

    // A host name the certificate does not carry (`localhost`, the same
    // server): verify-full refuses it.
    let wrong_name = store(url("localhost", "verify-full", "ca"))
        .await
        .expect_err("a name the certificate does not carry");
    assert!(
        format!("{wrong_name:?}").contains("NotValidForName"),
        "{wrong_name:?}"
    );
    let _ = std::fs::remove_dir_all(&certs);
}
