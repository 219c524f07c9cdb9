import sys

from model_store.cli import main

if __name__ == "__main__":
    sys.exit(main())
