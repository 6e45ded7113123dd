//! The properties file, the credentials mapping and the store URL.

use std::time::{Duration, SystemTime};

use kcl_cli::credentials::{self, CredentialsSpec};
use kcl_cli::properties::{MultiLangProperties, Retrieval, parse_properties};
use kcl_core::InitialPosition;

/// kclpy 3.2.0's own samples/sample.properties, as shipped.
const KCLPY_SAMPLE: &str = "\
# The script that abides by the multi-language protocol.
executableName = sample_kclpy_app.py
streamArn = arn:aws:kinesis:us-east-5:000000000000:stream/kclpysample
streamName = kclpysample
applicationName = PythonKCLSample
AwsCredentialsProvider = DefaultCredentialsProvider
processingLanguage = python/3.8
initialPositionInStream = TRIM_HORIZON
regionName = us-east-1
";

#[test]
fn kclpy_sample_properties() {
    let p = MultiLangProperties::parse(KCLPY_SAMPLE).unwrap();
    assert_eq!(p.command, ["sample_kclpy_app.py"]);
    // streamArn wins over streamName, as in Java.
    assert_eq!(
        p.stream,
        "arn:aws:kinesis:us-east-5:000000000000:stream/kclpysample"
    );
    assert_eq!(p.application_name, "PythonKCLSample");
    assert_eq!(p.table_name, "PythonKCLSample");
    assert_eq!(p.initial_position, InitialPosition::TrimHorizon);
    assert_eq!(p.region.as_deref(), Some("us-east-1"));
    // Defaults (Java's where it has a sane one).
    assert_eq!(p.failover_time, Duration::from_secs(10));
    assert_eq!(p.max_records, 10_000);
    assert_eq!(p.idle_time_between_reads, Duration::from_millis(1500));
    assert_eq!(p.shutdown_grace, Duration::from_secs(10));
    assert_eq!(p.action_timeout, Duration::from_secs(300));
    assert!(p.cleanup_leases_upon_shard_completion);
    assert_eq!(p.lease_store_url, None);
}

/// The two engine options Java's daemon passes through: honoured, not
/// warned about and dropped.
#[test]
fn empty_batches_and_the_lease_cap_are_read() {
    let base = "executableName = a\napplicationName = app\nstreamName = s\n";
    let p = MultiLangProperties::parse(base).unwrap();
    assert!(!p.call_process_records_even_for_empty_record_list);
    assert_eq!(p.max_leases_for_worker, None);
    let p = MultiLangProperties::parse(&format!(
        "{base}callProcessRecordsEvenForEmptyRecordList = true\nmaxLeasesForWorker = 7\n"
    ))
    .unwrap();
    assert!(p.call_process_records_even_for_empty_record_list);
    assert_eq!(p.max_leases_for_worker, Some(7));
    // Java's "no cap" spelled out.
    let p =
        MultiLangProperties::parse(&format!("{base}maxLeasesForWorker = 2147483647\n")).unwrap();
    assert_eq!(p.max_leases_for_worker, Some(2_147_483_647));
}

#[test]
fn values_and_quirks() {
    let p = MultiLangProperties::parse(
        "executableName =   python3   app.py  --flag\n\
         applicationName: orders\n\
         streamName orders-stream\n\
         tableName = orders-leases\n\
         cleanupLeasesUponShardCompletion = false\n\
         initialPositionInStreamExtended = 1700000000\n\
         kinesisEndpoint = kinesis.local:4567\n\
         dynamoDBEndpoint = http://127.0.0.1:8000\n\
         timeoutInSeconds = 30\n\
         leaseStoreUrl = redis://127.0.0.1:6379/0\n\
         workerId = w\\u00e9-1\n\
         AwsCredentialsProvider = ProfileCredentialsProvider|\\\n    dev\n\
         someTypoKey = 1\n",
    )
    .unwrap();
    assert_eq!(p.command, ["python3", "app.py", "--flag"]);
    assert_eq!(p.application_name, "orders");
    assert_eq!(p.stream, "orders-stream");
    assert_eq!(p.table_name, "orders-leases");
    // Java cannot turn a true-by-default boolean off; we can.
    assert!(!p.cleanup_leases_upon_shard_completion);
    assert_eq!(
        p.initial_position,
        InitialPosition::AtTimestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(
        p.kinesis_endpoint.as_deref(),
        Some("https://kinesis.local:4567")
    );
    assert_eq!(p.dynamo_endpoint.as_deref(), Some("http://127.0.0.1:8000"));
    assert_eq!(p.action_timeout, Duration::from_secs(30));
    assert_eq!(p.worker_id.as_deref(), Some("w\u{e9}-1"));
    assert_eq!(p.credentials, "ProfileCredentialsProvider|dev");
    assert_eq!(
        p.lease_store_url.as_deref(),
        Some("redis://127.0.0.1:6379/0")
    );
}

/// Java 3.x's rule: without `retrievalMode` (or with `DEFAULT`), fan-out
/// unless a polling key is set; an explicit mode wins over polling keys.
#[test]
fn retrieval_mode_follows_java() {
    let base = "executableName = a\napplicationName = app\nstreamName = s\n";
    let mode = |extra: &str| {
        MultiLangProperties::parse(&format!("{base}{extra}"))
            .unwrap()
            .retrieval
    };
    let default_fan_out = Retrieval::FanOut {
        consumer_name: None,
        consumer_arn: None,
    };
    assert_eq!(mode(""), default_fan_out);
    assert_eq!(mode("retrievalMode = default\n"), default_fan_out);
    // The kclpy sample sets no polling key: fan-out, as under Java.
    assert_eq!(
        MultiLangProperties::parse(KCLPY_SAMPLE).unwrap().retrieval,
        default_fan_out
    );
    for key in [
        "maxRecords = 500",
        "idleTimeBetweenReadsInMillis = 1000",
        "retryGetRecordsInSeconds = 5",
        "maxGetRecordsThreadPool = 2",
    ] {
        assert_eq!(mode(&format!("{key}\n")), Retrieval::Polling, "{key}");
        assert_eq!(
            mode(&format!("{key}\nretrievalMode = DEFAULT\n")),
            Retrieval::Polling,
            "{key} with DEFAULT"
        );
    }
    assert_eq!(mode("retrievalMode = polling\n"), Retrieval::Polling);
    assert_eq!(
        mode(
            "retrievalMode = FANOUT\nmaxRecords = 500\n\
             fanoutConfig.consumerName = audit\n\
             fanoutConfig.consumerArn = arn:aws:kinesis:us-east-1:1:stream/s/consumer/audit:1\n"
        ),
        Retrieval::FanOut {
            consumer_name: Some("audit".into()),
            consumer_arn: Some("arn:aws:kinesis:us-east-1:1:stream/s/consumer/audit:1".into()),
        }
    );
}

#[test]
fn start_errors_name_the_key() {
    let base = "executableName = a\napplicationName = app\nstreamName = s\n";
    for (extra, needle) in [
        (
            "idleTimeBetweenReadsInMillis = 100\n",
            "idleTimeBetweenReadsInMillis",
        ),
        ("maxRecords = 0\n", "maxRecords"),
        ("failoverTimeMillis = ten\n", "failoverTimeMillis"),
        (
            "callProcessRecordsEvenForEmptyRecordList = yes\n",
            "callProcessRecordsEvenForEmptyRecordList",
        ),
        ("retrievalMode = PUSH\n", "retrievalMode"),
        (
            "initialPositionInStream = AT_TIMESTAMP\n",
            "initialPositionInStreamExtended",
        ),
        ("timeoutInSeconds = 0\n", "timeoutInSeconds"),
        ("maxLeasesForWorker = 0\n", "maxLeasesForWorker"),
        ("maxLeasesForWorker = many\n", "maxLeasesForWorker"),
    ] {
        let e = MultiLangProperties::parse(&format!("{base}{extra}")).unwrap_err();
        assert!(e.to_string().contains(needle), "{extra}: {e}");
    }
    for missing in ["executableName", "applicationName", "streamName"] {
        let text: String = base
            .lines()
            .filter(|l| !l.starts_with(missing))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = MultiLangProperties::parse(&text).unwrap_err();
        assert!(
            e.to_string().contains(missing.trim_end_matches("Name")),
            "{missing}: {e}"
        );
    }
}

#[test]
fn java_properties_syntax() {
    let map = parse_properties(
        "! comment\n  # comment\nkey\\ with\\ spaces = a\\tb\nempty\ncolon:x\nlast = 1\nlast = 2\ncont = a\\\n  b\\\\\n",
    );
    assert_eq!(map["key with spaces"], "a\tb");
    assert_eq!(map["empty"], "");
    assert_eq!(map["colon"], "x");
    assert_eq!(map["last"], "2");
    assert_eq!(map["cont"], "ab\\");
}

#[test]
fn credentials_are_mapped_or_refused() {
    use CredentialsSpec::*;
    let cases: &[(&str, Vec<CredentialsSpec>)] = &[
        ("DefaultCredentialsProvider", vec![Default]),
        (
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
            vec![Default],
        ),
        (
            "com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
            vec![Default],
        ),
        ("EnvironmentVariableCredentialsProvider", vec![Environment]),
        ("ProfileCredentialsProvider", vec![Profile(None)]),
        (
            "ProfileCredentialsProvider|dev",
            vec![Profile(Some("dev".into()))],
        ),
        (
            "com.amazonaws.auth.profile.ProfileCredentialsProvider|dev",
            vec![Profile(Some("dev".into()))],
        ),
        (
            "InstanceProfileCredentialsProvider, EnvironmentVariableCredentialsProvider",
            vec![InstanceProfile, Environment],
        ),
        ("ContainerCredentialsProvider", vec![Container]),
        ("WebIdentityTokenFileCredentialsProvider", vec![WebIdentity]),
        (
            "StsAssumeRoleCredentialsProvider|arn:aws:iam::1:role/r|sess",
            vec![AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                session: "sess".into(),
                external_id: None,
            }],
        ),
        (
            "com.amazonaws.auth.STSAssumeRoleSessionCredentialsProvider|arn:aws:iam::1:role/r|s|ext",
            vec![AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                session: "s".into(),
                external_id: Some("ext".into()),
            }],
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(&credentials::parse(value).unwrap(), expected, "{value}");
    }
    for bad in [
        "SystemPropertyCredentialsProvider",
        "StsAssumeRoleCredentialsProvider|arn-only",
        "",
        "MyCustomProvider",
    ] {
        let e = credentials::parse(bad).unwrap_err();
        if !bad.is_empty() {
            assert!(e.contains(bad.split('|').next().unwrap()), "{bad}: {e}");
        }
    }
}

#[cfg(all(feature = "memory", feature = "redis"))]
#[tokio::test]
async fn store_by_url() {
    use kcl_cli::store_url::{DynamoSettings, lease_store_from_url};
    let store = lease_store_from_url("memory://", "app-one", DynamoSettings::default())
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("app-one"), "{store:?}");
    let e = lease_store_from_url("mysql://u:hunter2@db/x", "app", DynamoSettings::default())
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("scheme"), "{e}");
    let e = lease_store_from_url(
        "redis://:hunter2@127.0.0.1:1/0?bogus=1",
        "app",
        DynamoSettings::default(),
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

/// `Debug` of the settings never shows the lease store's password.
#[test]
fn debug_hides_the_store_password() {
    let text = format!("{KCLPY_SAMPLE}leaseStoreUrl = redis://user:s3cr%2Fet@127.0.0.1:6379/0\n");
    let p = MultiLangProperties::parse(&text).expect("valid properties");
    let shown = format!("{p:?}");
    assert!(!shown.contains("s3cr"), "password shown in {shown}");
    assert!(shown.contains("127.0.0.1:6379"), "URL missing from {shown}");
}
