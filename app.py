"""`python app.py [--host H] [--port P] [--index DIR] [--docs DIR]`: the web chat, exactly `qa-bot serve`."""

import sys

from qa_bot.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
