//! Unit tests of block acquisition.
