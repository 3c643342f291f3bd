//! The EC2 test cloud (moto + bridge) as the tests use it: started once if
//! it is not running, read from the env file `scripts/test-clouds/ec2 up`
//! writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// An AMI moto knows (Canonical's 16.04 image); the bodies are node containers whatever it says.
pub const AMI: &str = "ami-785db401";

pub struct Ec2Cloud {
    pub dir: PathBuf,
    pub endpoint: String,
    pub subnet: String,
    pub profile: String,
    /// A Debian AMI whose bodies have no Docker (login user `admin`).
    pub bare_ami: String,
    /// AWS_CONFIG_FILE and friends, for `provision` runs.
    pub env: Vec<(String, String)>,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The running test cloud; starts it when it is not running.
pub fn ec2_cloud() -> &'static Ec2Cloud {
    static CLOUD: OnceLock<Ec2Cloud> = OnceLock::new();
    CLOUD.get_or_init(|| {
        let (dir, env) = super::start_test_cloud("ec2", &["moto: running", "bridge: running"]);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} missing from the ec2 env file"))
        };
        // The driver in this process (contract tests) reads the same files.
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        Ec2Cloud {
            endpoint: get("PROVISION_EC2_ENDPOINT"),
            subnet: get("PROVISION_EC2_SUBNET"),
            profile: get("PROVISION_EC2_PROFILE"),
            bare_ami: get("PROVISION_EC2_BARE_AMI"),
            dir,
            env,
        }
    })
}

impl Ec2Cloud {
    /// What moto holds with tag `key=value` (instances, security groups,
    /// key pairs), read with the bridge's credentials.
    pub fn inspect(&self, key: &str, value: &str) -> serde_json::Value {
        let out = Command::new("python3")
            .arg(repo().join("tests/clouds/ec2_inspect.py"))
            .arg(&self.dir)
            .arg(format!("{key}={value}"))
            .output()
            .expect("run ec2_inspect.py");
        assert!(
            out.status.success(),
            "ec2_inspect.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("inspect JSON")
    }

    /// Runs `code` with `ec2` a boto3 client holding the bridge's (admin)
    /// credentials and `args` as sys.argv[1:]: what an operator does by
    /// hand, or the cloud does on its own. Returns what it printed.
    pub fn admin(&self, code: &str, args: &[&str]) -> String {
        let aws = self.dir.join("aws");
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import boto3, sys\nec2 = boto3.Session(profile_name='bridge').client('ec2')\n{code}"
            ))
            .args(args)
            .env("AWS_CONFIG_FILE", aws.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"))
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An AMI whose instances' bodies run the local Docker image `body`,
    /// logging in as `login_user` (tags the bridge reads); its id.
    pub fn register_ami(&self, name: &str, body: &str, login_user: &str) -> String {
        self.admin(
            "ami = ec2.register_image(Name=sys.argv[1], Architecture='x86_64', RootDeviceName='/dev/xvda', \
             VirtualizationType='hvm', BlockDeviceMappings=[{'DeviceName': '/dev/xvda', 'Ebs': {'VolumeSize': 8}}])['ImageId']\n\
             ec2.create_tags(Resources=[ami], Tags=[{'Key': 'provision-test:body', 'Value': sys.argv[2]}, \
             {'Key': 'provision-test:login-user', 'Value': sys.argv[3]}])\n\
             print(ami)",
            &[name, body, login_user],
        )
    }

    /// Terminates an instance behind the driver's back (the cloud lost it).
    pub fn terminate(&self, instance_id: &str) {
        self.admin(
            "ec2.terminate_instances(InstanceIds=[sys.argv[1]])",
            &[instance_id],
        );
    }

    /// A volume with the cluster's tag and no instance (what an AMI whose
    /// root volume outlives its instance leaves); its id.
    pub fn orphan_volume(&self, cluster_id: &str) -> String {
        self.admin(
            "zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']\n\
             print(ec2.create_volume(AvailabilityZone=zone, Size=8, TagSpecifications=[{'ResourceType': 'volume', \
             'Tags': [{'Key': 'provision:cluster', 'Value': sys.argv[1]}]}])['VolumeId'])",
            &[cluster_id],
        )
    }

    /// Instances of the cluster that are not terminated.
    pub fn live_instances(&self, key: &str, value: &str) -> Vec<serde_json::Value> {
        self.inspect(key, value)["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["state"] != "terminated")
            .cloned()
            .collect()
    }

    /// The Swarm template for the test cloud: SSH over the default (public,
    /// NAT) address.
    pub fn template(&self) -> PathBuf {
        repo().join("scripts/test-clouds/ec2-swarm.yaml")
    }

    /// Names of the bridge's node containers for these instance ids.
    pub fn bodies(&self, instance_ids: &[String]) -> Vec<String> {
        let out = super::docker(&[
            "ps",
            "-a",
            "--filter",
            "label=provision-test-cloud=ec2",
            "--format",
            "{{.Names}}",
        ]);
        out.lines()
            .filter(|n| instance_ids.iter().any(|id| n.ends_with(id.as_str())))
            .map(str::to_string)
            .collect()
    }
}

/// An HTTP proxy in front of moto that answers every `every`-th request
/// with EC2's throttling error (503 RequestLimitExceeded) and forwards the
/// rest unchanged. Counts what it throttled.
pub struct ThrottlingProxy {
    pub url: String,
    throttled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ThrottlingProxy {
    pub fn start(upstream: &str, every: usize) -> ThrottlingProxy {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let throttled = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = throttled.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (upstream, seen, counter) = (upstream.clone(), seen.clone(), counter.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut conn = conn;
                    // One request per connection: read the head and body.
                    let mut head = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("connection:") {
                            continue;
                        }
                        if line == "\r\n" {
                            head.extend_from_slice(b"Connection: close\r\n\r\n");
                            break;
                        }
                        head.extend_from_slice(line.as_bytes());
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    if n % every == 0 {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>throttled</RequestID></Response>";
                        let _ = write!(
                            conn,
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                            xml.len()
                        );
                        return;
                    }
                    let Ok(mut up) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let _ = up.write_all(&head);
                    let _ = up.write_all(&body);
                    let mut response = Vec::new();
                    let _ = up.read_to_end(&mut response);
                    let _ = conn.write_all(&response);
                });
            }
        });
        ThrottlingProxy { url, throttled }
    }

    pub fn throttled(&self) -> usize {
        self.throttled.load(std::sync::atomic::Ordering::SeqCst)
    }
}
