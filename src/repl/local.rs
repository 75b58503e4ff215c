//! The [`Backend`] of the node's own prompt: its handle, in this process. Each answer comes from
//! the same function the matching HTTP route calls ([`crate::http::api`],
//! [`crate::http::actions`]), so the prompt and `gossipchain <command>` print the same.

use super::{Backend, Failure};
use crate::chain::{Address, Txid};
use crate::http::views::{
    AccountView, BlockSummary, BlockView, DialView, MempoolView, MiningView, PeerView, SentView,
    StatusView, SyncView,
};
use crate::http::{actions, api};
use crate::node::{BlockId, NodeHandle, Stopped};
use libp2p::Multiaddr;

impl From<Stopped> for Failure {
    fn from(_: Stopped) -> Self {
        Failure::Unreachable("the node has stopped".into())
    }
}

impl Backend for NodeHandle {
    async fn status(&self) -> Result<StatusView, Failure> {
        // The snapshot is published after each step of the node; a round trip first makes it
        // include every command before this one (blocks just mined, `mine off`).
        self.chain(0).await?;
        Ok(api::status_view(self)?)
    }

    async fn peers(&self) -> Result<Vec<PeerView>, Failure> {
        Ok(api::peer_views(self).await)
    }

    async fn chain(&self, n: usize) -> Result<Vec<BlockSummary>, Failure> {
        Ok(api::chain_view(self, n).await?)
    }

    async fn block(&self, id: BlockId) -> Result<BlockView, Failure> {
        Ok(api::block_view(self, id).await?)
    }

    async fn balance(&self, address: Address) -> Result<AccountView, Failure> {
        Ok(api::account_view(self, address).await?)
    }

    async fn send(&self, to: Address, amount: u64, fee: u64) -> Result<SentView, Failure> {
        Ok(actions::send_view(self, to, amount, fee).await?)
    }

    async fn bump(&self, txid: Txid, fee: u64) -> Result<SentView, Failure> {
        Ok(actions::bump_view(self, txid, fee).await?)
    }

    async fn mempool(&self) -> Result<MempoolView, Failure> {
        Ok(api::mempool_view(self).await?)
    }

    async fn mine(&self, n: u64, each: &mut dyn FnMut(&BlockSummary)) -> Result<(), Failure> {
        let mut blocks = NodeHandle::mine(self, n).await?;
        for _ in 0..n {
            match blocks.recv().await.ok_or(Stopped)? {
                Ok(info) => each(&BlockSummary::of(&info, self.address_kind())),
                Err(e) => return Err(actions::mining_stopped(e.to_string()).into()),
            }
        }
        Ok(())
    }

    async fn set_mining(&self, on: bool) -> Result<MiningView, Failure> {
        Ok(actions::set_mining_view(self, on).await?)
    }

    async fn dial(&self, addr: &Multiaddr) -> Result<DialView, Failure> {
        Ok(actions::dial_view(self, addr.clone()).await?)
    }

    async fn sync(&self) -> Result<SyncView, Failure> {
        Ok(actions::sync_view(self).await?)
    }
}
