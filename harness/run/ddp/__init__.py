"""Distributed (`ddp-training`) cases under torchrun. The process boundary is in the file
names: `case` and `launcher` run in the runner, `worker` in every rank, `follower` on
other nodes; `ownership` says which process reads which counter."""
