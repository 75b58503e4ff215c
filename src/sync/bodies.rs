//! The body phase: the moving window of heights past the first block not yet applied, who is
//! asked for which, stalls, and handing received bodies to the node in order.

use super::headers::work_of;
use super::{Action, Applying, BatchId, BatchResult, Body, Kind, Now, Req, Slot, Sync, Tag};
use crate::chain::{BlockHash, ChainState};
use crate::mutants::Mutation;
use std::fmt::Debug;
use std::time::Instant;

impl<P: Copy + Ord + Debug> Sync<P> {
    /// Whether `peer` may be asked for bodies of the run at `height`: connected, not backed
    /// off, on the run's branch as far as we know, and claiming at least that block's work.
    fn may_serve(&self, peer: &P, height: u64, now: Instant) -> bool {
        let (Some(run), Some(s)) = (&self.run, self.peers.get(peer)) else {
            return false;
        };
        if !self.choosable(peer, now) || s.lacks_run || s.stalled {
            return false;
        }
        if run.source == Some(*peer) {
            return true;
        }
        let needed = run.headers.get(height).map(|h| h.work);
        match (s.claim, needed) {
            (Some(c), Some(w)) => work_of(c.work()) >= w,
            _ => false,
        }
    }

    fn bodies_asked_of(&self, peer: &P) -> usize {
        (self.in_flight.values())
            .filter(|f| f.peer == *peer && matches!(f.kind, Kind::Bodies { .. }))
            .count()
    }

    /// Fills the window: each peer that may serve gets requests up to its share, lowest
    /// missing heights first; peers with fewer requests in flight are served first.
    pub(super) fn pump_bodies(
        &mut self,
        now: Instant,
        chain: &ChainState,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(run) = &mut self.run else {
            return;
        };
        if run.headers.work() <= chain.tip_chainwork() || run.headers.is_empty() {
            return;
        }
        run.next_hand = run.next_hand.max(run.headers.fork_height() + 1);
        if run.held_bytes >= self.config.held_bytes {
            return;
        }
        let lo = run.next_hand;
        let hi = run
            .headers
            .last_height()
            .min(lo.saturating_add(self.config.window - 1));
        let peers: Vec<P> = self.peers.keys().copied().collect();
        for round in 0..self.config.requests_per_peer {
            for peer in &peers {
                if self.bodies_asked_of(peer) != round {
                    continue;
                }
                let Some(run) = &self.run else { return };
                let mut heights = Vec::new();
                for h in lo..=hi {
                    if heights.len() == self.config.bodies_per_request {
                        break;
                    }
                    if !run.slots.contains_key(&h) && self.may_serve(peer, h, now) {
                        heights.push(h);
                    }
                }
                if heights.is_empty() {
                    continue;
                }
                let hashes: Vec<BlockHash> = (heights.iter())
                    .filter_map(|h| run.headers.get(*h).map(|c| c.hash))
                    .collect();
                let tag = self.next_tag;
                if let Some(run) = self.run.as_mut() {
                    for h in &heights {
                        run.slots.insert(*h, Slot::Asked(tag));
                    }
                }
                let req = Req::GetBodies {
                    hashes: hashes.clone(),
                };
                self.request(*peer, Kind::Bodies { heights, hashes }, req, now, out);
            }
        }
    }

    /// Bodies answering `tag`: each must be the block asked at its position.
    pub(super) fn on_bodies(
        &mut self,
        peer: P,
        tag: Tag,
        blocks: Vec<Body>,
        _now: Now,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(f) = self.take(peer, tag, |k| matches!(k, Kind::Bodies { .. })) else {
            self.wrong_kind(peer, tag, out);
            return;
        };
        let Kind::Bodies { heights, hashes } = &f.kind else {
            return;
        };
        if blocks.len() > hashes.len() {
            self.release(&f);
            return self.ban(peer, "served more blocks than it was asked for", out);
        }
        if let Some(i) = (blocks.iter().zip(hashes))
            .position(|(b, h)| b.hash != *h)
            .filter(|_| !crate::mutants::active(Mutation::BodyHashUnchecked))
        {
            self.release(&f);
            let reason = format!(
                "served block {} for {}",
                blocks[i].hash.short(),
                hashes[i].short()
            );
            return self.ban(peer, &reason, out);
        }
        let got = blocks.len();
        self.stats.bodies_received += got as u64;
        let floor = self.config.stall_timeout;
        let Some(run) = self.run.as_mut() else {
            self.stats.ignored += 1;
            return;
        };
        for (body, h) in blocks.into_iter().zip(heights) {
            if *h < run.next_hand {
                continue;
            }
            let ours = match run.slots.get(h) {
                None => true,
                Some(Slot::Asked(t)) => *t == tag,
                Some(Slot::Got(..)) => false,
            };
            if ours {
                if *h == run.next_hand {
                    // The window moves: the stall timeout relaxes back towards its floor.
                    self.stall_timeout = self.stall_timeout.mul_f64(0.85).max(floor);
                }
                run.held_bytes += body.wire.len();
                run.slots.insert(*h, Slot::Got(Box::new(body), peer));
            }
        }
        for h in &heights[got..] {
            if matches!(run.slots.get(h), Some(Slot::Asked(t)) if *t == tag) {
                run.slots.remove(h);
            }
        }
        if let Some(s) = self.peers.get_mut(&peer) {
            if got == 0 {
                // Not on the run's branch (or it pruned it): ask others.
                s.lacks_run = true;
            } else {
                s.strikes = 0;
            }
        }
    }

    /// When the window's first block is overdue, if another peer could serve it.
    pub(super) fn stall_check(&self) -> Option<Instant> {
        if crate::mutants::active(Mutation::StallNeverArmed) {
            return None;
        }
        let run = self.run.as_ref()?;
        let Some(Slot::Asked(tag)) = run.slots.get(&run.next_hand) else {
            return None;
        };
        self.in_flight.get(tag).map(|f| f.sent + self.stall_timeout)
    }

    /// Takes everything from a peer holding the window's first block too long, if another
    /// peer could serve it; that peer gets no more of this run, and the timeout doubles.
    /// When no other peer is known to hold the block, the others are asked for their status
    /// (once per stalled request): their last claims may be up to a status round old, and a
    /// fresh one lets the stall fire instead of waiting for the request's deadline.
    pub(super) fn check_stall(&mut self, now: Instant, out: &mut Vec<Action<P>>) {
        let Some(due) = self.stall_check() else {
            return;
        };
        if now < due {
            return;
        }
        let Some(run) = &self.run else { return };
        let first = run.next_hand;
        let Some(Slot::Asked(tag)) = run.slots.get(&first) else {
            return;
        };
        let Some(staller) = self.in_flight.get(tag).map(|f| f.peer) else {
            return;
        };
        let others = (self.peers.keys()).any(|p| *p != staller && self.may_serve(p, first, now));
        if !others {
            let tag = *tag;
            if self.stall_probe != Some(tag) {
                self.stall_probe = Some(tag);
                let asked: Vec<P> = (self.peers.keys())
                    .filter(|p| **p != staller && self.choosable(p, now))
                    .filter(|p| {
                        !(self.in_flight.values())
                            .any(|f| f.peer == **p && matches!(f.kind, Kind::Status))
                    })
                    .copied()
                    .collect();
                for p in asked {
                    self.request(p, Kind::Status, Req::Status, now, out);
                }
            }
            return;
        }
        self.stats.stalls += 1;
        self.stall_timeout = (self.stall_timeout * 2).min(self.config.stall_max);
        if let Some(s) = self.peers.get_mut(&staller) {
            s.stalled = true;
        }
        let tags: Vec<Tag> = (self.in_flight.iter())
            .filter(|(_, f)| f.peer == staller && matches!(f.kind, Kind::Bodies { .. }))
            .map(|(t, _)| *t)
            .collect();
        for tag in tags {
            if crate::mutants::active(Mutation::StallKeepsRequests) {
                if let Some(f) = self.in_flight.get(&tag).cloned() {
                    self.release(&f);
                }
            } else if let Some(f) = self.in_flight.remove(&tag) {
                self.release(&f);
            }
        }
    }

    /// Hands the received bodies at the window's start to the node, in order, when it is not
    /// applying a batch already.
    pub(super) fn pump_apply(&mut self, out: &mut Vec<Action<P>>) {
        if self.applying.is_some() {
            return;
        }
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let mut blocks = Vec::new();
        let mut from = Vec::new();
        while blocks.len() < self.config.batch_blocks {
            let h = run.next_hand;
            if !matches!(run.slots.get(&h), Some(Slot::Got(..))) {
                break;
            }
            let Some(Slot::Got(body, peer)) = run.slots.remove(&h) else {
                break;
            };
            run.held_bytes -= body.wire.len();
            from.push((h, peer));
            blocks.push(*body);
            run.next_hand += 1;
        }
        if blocks.is_empty() {
            return;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        let senders = from.iter().map(|(_, p)| *p).collect();
        self.applying = Some(Applying {
            id,
            run: run.id,
            from,
        });
        out.push(Action::Apply {
            batch: id,
            blocks,
            from: senders,
        });
    }

    /// The node applied a batch: the run's fork moves up; an invalid block bans whoever
    /// served it (and the headers' source too if the block itself is invalid).
    pub(super) fn on_applied(
        &mut self,
        batch: BatchId,
        result: BatchResult,
        now: Now,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(applying) = self.applying.take_if(|a| a.id == batch) else {
            self.stats.ignored += 1;
            return;
        };
        self.stats.batches_applied += 1;
        let stop = match &result {
            BatchResult::Applied => applying.from.len(),
            BatchResult::Invalid { index, .. } | BatchResult::Paused { index, .. } => *index,
        };
        let same_run = self.run.as_ref().is_some_and(|r| r.id == applying.run);
        if let Some(run) = self.run.as_mut().filter(|_| same_run)
            && let Some((h, _)) = stop.checked_sub(1).and_then(|i| applying.from.get(i))
        {
            run.headers.advance_fork(*h);
        }
        for (_, p) in &applying.from[..stop.min(applying.from.len())] {
            if let Some(s) = self.peers.get_mut(p) {
                s.strikes = 0;
            }
        }
        let Some(&(height, sender)) = applying.from.get(stop) else {
            return;
        };
        match result {
            BatchResult::Applied => {}
            BatchResult::Invalid {
                reason, condemned, ..
            } => {
                if condemned {
                    // The block is invalid whatever its body: the header chain is bad from
                    // here, and so is the peer whose best chain holds it.
                    let source = self.run.as_ref().and_then(|r| r.source);
                    self.drop_run(true);
                    let why = format!("served an invalid block at height {height}: {reason}");
                    self.ban(sender, &why, out);
                    if let Some(s) = source.filter(|s| *s != sender) {
                        self.ban(s, "its headers lead to an invalid block", out);
                    }
                } else {
                    if let Some(run) = self.run.as_mut().filter(|_| same_run) {
                        run.next_hand = height;
                    }
                    let why = format!("served a body that does not match its header: {reason}");
                    self.ban(sender, &why, out);
                }
            }
            BatchResult::Paused { .. } => {
                let source = self.run.as_ref().and_then(|r| r.source);
                self.drop_run(false);
                for p in [Some(sender), source].into_iter().flatten() {
                    self.strike(p, now.mono);
                }
            }
        }
    }
}
