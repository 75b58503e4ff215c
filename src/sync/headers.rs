//! The header phase: whom to ask for headers, and what to make of the answer. The checked run
//! ([`HeaderChain`]) lives in the component, never in the block index.

use super::{Action, Kind, Now, Req, Run, Sync, Tag};
use crate::chain::headers::{HeaderChain, HeaderError};
use crate::chain::target::Work;
use crate::chain::{ChainState, Header};
use crate::net::protocol;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

/// A claimed cumulative work as the chain counts work.
pub(super) fn work_of(claim: u128) -> Work {
    Work(claim.into())
}

impl<P: Copy + Ord + Debug> Sync<P> {
    /// Whether a headers request is in flight.
    pub(super) fn asking_headers(&self) -> bool {
        self.in_flight
            .values()
            .any(|f| matches!(f.kind, Kind::Headers { .. }))
    }

    /// Asks `peer` for the headers after the run's end (or after our tip when there is none).
    pub(super) fn ask_headers(
        &mut self,
        peer: P,
        now: Instant,
        chain: &ChainState,
        out: &mut Vec<Action<P>>,
    ) {
        let from = self.run.as_ref().map(|r| r.headers.last_hash());
        let locator = Self::locator(chain, from);
        if let Some(run) = self.run.as_mut() {
            run.source = Some(peer);
        }
        let req = Req::GetHeaders {
            locator: locator.clone(),
        };
        let claimed = self.claim(&peer).map(|c| c.work());
        self.request(peer, Kind::Headers { locator, claimed }, req, now, out);
    }

    /// Asks the peer claiming the most work above ours and the run's for headers, when none
    /// is being asked; drops a run that can no longer beat our chain.
    pub(super) fn pump_headers(
        &mut self,
        now: Instant,
        chain: &ChainState,
        out: &mut Vec<Action<P>>,
    ) {
        if self.asking_headers() {
            return;
        }
        let tip = chain.tip_chainwork();
        let run_work = self.run.as_ref().map(|r| r.headers.work());
        let have = run_work.map_or(tip, |w| w.max(tip));
        if let Some(run) = &self.run
            && run.headers.len() >= self.config.max_headers
        {
            if run.headers.work() <= tip {
                // A flood of cheap headers, or a very long branch that has not caught up:
                // either way, memory comes first.
                let source = run.source;
                self.drop_run(true);
                if let Some(p) = source {
                    self.strike(p, now);
                }
            }
            // Else wait for bodies to shrink the run.
            return;
        }
        let best = (self.peers.iter())
            .filter(|(p, _)| self.choosable(p, now))
            .filter_map(|(p, s)| s.claim.map(|c| (*p, work_of(c.work()))))
            .filter(|(_, w)| *w > have)
            .max_by_key(|(_, w)| *w);
        match best {
            Some((peer, _)) => self.ask_headers(peer, now, chain, out),
            None => {
                if run_work.is_some_and(|w| w <= tip) {
                    self.drop_run(false);
                }
            }
        }
    }

    /// When the headers request in flight is overdue, if another peer could answer it.
    pub(super) fn headers_stall_check(&self) -> Option<Instant> {
        (self.in_flight.values())
            .find(|f| matches!(f.kind, Kind::Headers { .. }))
            .map(|f| f.sent + self.stall_timeout)
    }

    /// Gives up a headers request that is overdue when another peer claims as much work: the
    /// slow peer is backed off (no ban) and the next pump asks the other one. So a peer that
    /// claims the most work and then answers slowly costs a stall timeout, not a request's
    /// deadline.
    pub(super) fn check_headers_stall(&mut self, now: Instant) {
        let Some(due) = self.headers_stall_check() else {
            return;
        };
        if now < due {
            return;
        }
        let Some((&tag, f)) =
            (self.in_flight.iter()).find(|(_, f)| matches!(f.kind, Kind::Headers { .. }))
        else {
            return;
        };
        let slow = f.peer;
        let claimed = self
            .claim(&slow)
            .map_or(Work::default(), |c| work_of(c.work()));
        let others = (self.peers.iter()).any(|(p, s)| {
            *p != slow
                && self.choosable(p, now)
                && s.claim.is_some_and(|c| work_of(c.work()) >= claimed)
        });
        if !others {
            return;
        }
        self.stats.stalls += 1;
        if let Some(f) = self.in_flight.remove(&tag) {
            self.release(&f);
        }
        self.strike(slow, now);
    }

    /// Drops the run and every bodies request of it (`lost`: it never beat our chain).
    pub(super) fn drop_run(&mut self, lost: bool) {
        if self.run.take().is_none() {
            return;
        }
        if lost {
            self.stats.runs_dropped += 1;
        }
        self.in_flight
            .retain(|_, f| !matches!(f.kind, Kind::Bodies { .. }));
        for s in self.peers.values_mut() {
            s.lacks_run = false;
            s.stalled = false;
        }
    }

    /// Headers answering `tag`: checked and appended to the run (or starting a new one from
    /// the locator hash they build on).
    pub(super) fn on_headers(
        &mut self,
        peer: P,
        tag: Tag,
        headers: Vec<Header>,
        now: Now,
        chain: &ChainState,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(f) = self.take(peer, tag, |k| matches!(k, Kind::Headers { .. })) else {
            self.wrong_kind(peer, tag, out);
            return;
        };
        let Kind::Headers { locator, claimed } = f.kind else {
            return;
        };
        let claimed = claimed.map(work_of);
        if headers.len() > protocol::MAX_HEADERS_PER_RESPONSE as usize {
            return self.ban(peer, "served more headers than a response holds", out);
        }
        let Some(first) = headers.first() else {
            if let Some(run) = self.run.as_mut()
                && run.source == Some(peer)
            {
                run.more = false;
                run.source = None;
            }
            let tip = chain.tip_chainwork();
            let have = self.run.as_ref().map_or(tip, |r| r.headers.work().max(tip));
            if claimed.is_some_and(|c| c > have) {
                self.ban(peer, "claimed more work than it can serve", out);
            }
            return;
        };
        let parent = first.prev_hash;
        let continues = self
            .run
            .as_ref()
            .is_some_and(|r| r.headers.last_hash() == parent);
        if !continues {
            let start = if locator.contains(&parent) {
                HeaderChain::new(chain, parent)
            } else {
                None
            };
            let Some(headers) = start else {
                return self.ban(
                    peer,
                    "served headers that do not connect to the locator",
                    out,
                );
            };
            self.drop_run(false);
            self.next_run += 1;
            self.run = Some(Run {
                id: self.next_run,
                next_hand: headers.fork_height() + 1,
                headers,
                source: None,
                more: false,
                slots: BTreeMap::new(),
                held_bytes: 0,
            });
        }
        let full = headers.len() == protocol::MAX_HEADERS_PER_RESPONSE as usize;
        let Some(run) = self.run.as_mut() else {
            return;
        };
        run.source = Some(peer);
        let before = run.headers.len();
        let result = run.headers.extend(chain.params(), &headers, now.wall_ms);
        self.stats.headers_checked += (run.headers.len() - before) as u64;
        match result {
            Ok(_) => {
                run.more = full;
                let reached = run.headers.work().max(chain.tip_chainwork());
                // Its best chain ends here (the answer is not full): the status it sent before
                // we asked can claim no more work than this (a chain only gains work).
                if !full && claimed.is_some_and(|c| c > reached) {
                    self.ban(peer, "claimed more work than it can serve", out);
                }
            }
            Err(e) => {
                run.more = false;
                run.source = None;
                match e {
                    HeaderError::Invalid { error, .. } if !error.is_permanent() => {
                        // Ahead of our clock: no fault, try again later.
                        self.strike(peer, now.mono);
                    }
                    e => self.ban(peer, &format!("served a bad header: {e}"), out),
                }
            }
        }
    }
}
