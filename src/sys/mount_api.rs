//! mount_api
