//! Every multi-lane nonce-search backend this CPU has must find exactly the nonce sha2's
//! compression finds, for any header, start nonce, range and first-word bound.
#![no_main]

use gossipchain::chain::block::{HEADER_LEN, Header};
use gossipchain::miner::lanes::{Backend, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((header, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let Some((start, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let Some((count, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let Some((max, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let Ok(header) = Header::decode(header) else {
        return;
    };
    let start = u64::from_le_bytes(*start);
    let count = u64::from(u16::from_le_bytes(*count) % 1024);
    let t = Template::new(&header);
    let mut max = u32::from_le_bytes(*max);
    if rest.first().is_some_and(|b| b & 1 == 1) {
        // A bound some nonce in the range meets, so the hit path is exercised too.
        max = t.digest(start.wrapping_add(count / 2))[0];
    }
    let want = Backend::Portable.scan(&t, start, count, max);
    for backend in Backend::ALL.into_iter().filter(|b| b.available()) {
        assert_eq!(backend.scan(&t, start, count, max), want, "{}", backend.name());
    }
});
