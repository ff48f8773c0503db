//! shared's integration tests, one binary: the store against MariaDB, the Drive uploader
//! against the Drive emulator.

mod drive_meta;
mod layers;
mod privileges;
mod reconcile;
mod secrets;
mod source;
mod store;
mod upload;
