"""python -m llms -> the command line."""

from llms.cli import main

if __name__ == "__main__":
    main()
