//! The `local` cloud: every node is a container on the local Docker engine,
//! running its own systemd, sshd and dockerd, the way kind and k3d serve
//! laptops and CI. One private Docker network per cluster; every container,
//! network and volume carries the cluster id as a label.

mod container_mode;
mod engine;
mod image;
mod inotify;
mod labels;
mod provider;
mod subnet;

pub use image::{ensure_image, NODE_IMAGE_SCRIPT};
pub use provider::{LocalOptions, LocalProvider};
