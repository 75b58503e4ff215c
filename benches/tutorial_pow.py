"""The proof of work of the Flask tutorial node our users know (/work/shared/seeds 000,
"BitKhan"), run as is: a block dict, JSON-encoded with sorted keys, nonce appended as decimal
text, SHA-256 hex digest until it starts with `difficulty` hex zeros (4 = 16 bits). Mines
blocks back to back, each on the previous one's hash with one reward transaction, for the
given number of seconds, and prints `blocks=<n> seconds=<s> hashes=<h>`.

The tutorial's text lost its indentation: `nonce += 1` must sit in the `else` of the test
(as printed it would loop forever on the first nonce); that is the only change.

Usage: python3 benches/tutorial_pow.py SECONDS
"""

import datetime
import hashlib
import json
import sys
import time


class Blockchain:
    def __init__(self):
        self.chain = []
        self.transactions = []
        self.difficulty = 4
        self.hashes = 0
        self.create_block(nonce=1, previous_hash="0")

    def create_block(self, nonce, previous_hash):
        block = {
            "block_id": len(self.chain) + 1,
            "timestamp": str(datetime.datetime.now()),
            "nonce": nonce,
            "previous_hash": previous_hash,
            "hash": "0",
            "transactions": self.transactions,
        }
        self.transactions = []
        if len(self.chain) == 0:
            self.chain.append(block)
        return block

    def get_previous_block(self):
        return self.chain[-1]

    def proof_of_work(self, block):
        encoded_block = json.dumps(block, sort_keys=True).encode()
        nonce = 1
        valid_hash = False
        while valid_hash is False:
            hash_operation = hashlib.sha256(encoded_block + str(nonce).encode()).hexdigest()
            self.hashes += 1
            if hash_operation[: self.difficulty] == self.difficulty * "0":
                valid_hash = True
            else:
                nonce += 1
        return hash_operation, nonce

    def add_to_chain(self, block):
        block["hash"], block["nonce"] = self.proof_of_work(block)
        self.chain.append(block)
        return block

    def add_transaction(self, sender, receiver, bitkhan):
        self.transactions.append({"sender": sender, "receiver": receiver, "bitkhan": bitkhan})


def mine_block(blockchain):
    """The body of the tutorial's /mine_block route, without Flask."""
    previous_block = blockchain.get_previous_block()
    blockchain.add_transaction(sender="node", receiver="laptop_server", bitkhan=12.5)
    previous_hash = previous_block["hash"]
    block = blockchain.create_block(previous_hash=previous_hash, nonce=1)
    return blockchain.add_to_chain(block)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    blockchain = Blockchain()
    blocks = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        mine_block(blockchain)
        blocks += 1
    elapsed = time.perf_counter() - start
    print(f"blocks={blocks} seconds={elapsed:.6f} hashes={blockchain.hashes}")


if __name__ == "__main__":
    main()
