//! Block acquisition from peers, without I/O: [`serve`] answers peers' requests for headers
//! and blocks from the chain state (block locators, pages of blocks, headers after a locator,
//! blocks by hash).

pub mod serve;
