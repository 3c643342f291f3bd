//! The OpenStack test cloud answers as the `openstack` crate expects: every
//! call the driver relies on, made with the crate's own types (which parse
//! each answer strictly), against Keystone and the simulated services.

use crate::common::openstack::openstack_cloud;
use futures_util::TryStreamExt;
use openstack::auth::Password;
use openstack::waiter::Waiter;
use openstack::IdOrName;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk3yo3BCoTeSyC9bfHZ7QYiGZbiwE2BO6XzvAL7ahXg contract";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A session as the test cloud's `provision-test` user.
async fn connect(clouds_yaml: &std::path::Path) -> openstack::Cloud {
    let clouds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clouds_yaml).unwrap()).unwrap();
    let auth = &clouds["clouds"]["provision-test"]["auth"];
    let s = |k: &str| auth[k].as_str().unwrap().to_string();
    let password = Password::new(s("auth_url"), s("username"), s("password"), "Default")
        .unwrap()
        .with_project_scope(
            IdOrName::Name(s("project_name")),
            IdOrName::Name("Default".into()),
        );
    openstack::Cloud::new(password).await.expect("authenticate")
}

#[test]
fn the_openstack_crate_parses_every_answer_the_driver_relies_on() {
    let (_turn, cloud) = openstack_cloud();
    runtime().block_on(async {
        let os = connect(&cloud.clouds_yaml()).await;

        let flavors = os.list_flavors().await.expect("list flavors");
        assert!(flavors.iter().any(|f| f.name() == "m1.small"));
        let small = os.get_flavor("m1.small").await.expect("flavor by name");
        assert_eq!((small.vcpu_count(), small.ram_size()), (1, 2048));
        let detailed: Vec<_> = os
            .find_flavors()
            .detailed()
            .into_stream()
            .try_collect()
            .await
            .expect("flavors in detail");
        assert_eq!(detailed.len(), flavors.len());

        let image = os.get_image("debian-12").await.expect("image by name");
        assert_eq!(
            os.get_image(image.id()).await.expect("image by id").name(),
            "debian-12"
        );
        os.list_images().await.expect("list images");

        let private = os.get_network("private").await.expect("network by name");
        assert_eq!(private.external(), Some(false));
        let public = os.get_network("public").await.expect("external network");
        assert_eq!(public.external(), Some(true));
        os.list_networks().await.expect("list networks");

        let name = format!("contract-{}", std::process::id());
        let kp = os
            .new_keypair(&name)
            .with_public_key(KEY)
            .create()
            .await
            .expect("create keypair");
        assert_eq!(kp.public_key(), KEY);
        os.get_keypair(&name).await.expect("get keypair");
        assert!(os
            .list_keypairs()
            .await
            .expect("list keypairs")
            .iter()
            .any(|k| k.name() == &name));

        let waiter = os
            .new_server(&name, "m1.small")
            .with_image("debian-12")
            .with_network("private")
            .with_keypair(name.as_str())
            .with_metadata("provision-contract", "1")
            .create()
            .await
            .expect("create server");
        let server = waiter.wait().await.expect("server ACTIVE");
        assert_eq!(server.status(), openstack::compute::ServerStatus::Active);
        let id = server.id().clone();
        let again = os.get_server(&id).await.expect("get server");
        assert_eq!(
            again
                .metadata()
                .get("provision-contract")
                .map(String::as_str),
            Some("1")
        );
        assert!(again.addresses().contains_key("private"));
        assert!(os
            .find_servers()
            .detailed()
            .all()
            .await
            .expect("servers in detail")
            .iter()
            .any(|s| s.id() == &id));
        os.list_servers().await.expect("list servers");

        let ports = os
            .find_ports()
            .with_device_id(id.clone())
            .all()
            .await
            .expect("ports of the server");
        assert_eq!(ports.len(), 1);
        let fip = os
            .new_floating_ip(public.id().clone())
            .with_port(ports[0].id().clone())
            .with_description(format!("contract {name}"))
            .create()
            .await
            .expect("allocate floating IP");
        assert!(fip.is_associated());
        os.get_floating_ip(fip.id()).await.expect("get floating IP");
        let found = os
            .find_floating_ips()
            .with_description(format!("contract {name}"))
            .all()
            .await
            .expect("floating IPs by description");
        assert_eq!(found.len(), 1);
        fip.delete()
            .await
            .expect("release floating IP")
            .wait()
            .await
            .expect("floating IP gone");

        server
            .delete()
            .await
            .expect("delete server")
            .wait()
            .await
            .expect("server gone");
        kp.delete().await.expect("delete keypair");
        assert!(os.get_keypair(&name).await.is_err());
    });
}
