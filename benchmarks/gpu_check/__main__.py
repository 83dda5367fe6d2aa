"""`python -m benchmarks.gpu_check [--out FILE] [--quick] [--run-dir D] [--deadline-s S]`:
run the six-step GPU check; exits 1 if a check failed, else 0."""

import sys

from benchmarks.gpu_check.check import main

sys.exit(main())
