"""Stand-in for pip's get-pip.py bootstrap, which ansible-test downloads from a host the test
machines cannot reach. Same contract (argv = pip install arguments, plus get-pip's own
--no-setuptools/--no-wheel), built from the standard library's ensurepip and PyPI.
scripts/lint.sh copies it into ansible-test's cache."""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]))
