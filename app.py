"""`python app.py`: the web chat on the default corpus (./seeds -> ./embeddings), built first if needed."""

from qa_bot.web import main

if __name__ == "__main__":
    main()
