"""`python -m harness.distributed --node-rank K ...`: join ddp-training cases from another node.

The command the README documents; the code is `harness.run.ddp.follower`.
"""

import sys

from harness.run.ddp.follower import main

if __name__ == "__main__":
    sys.exit(main())
