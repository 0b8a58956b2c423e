"""Command line: `qa-bot index build|add|remove|update|list`, `retrieve`, `ask`, `eval`, `serve`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .bot import IndexReport, QABot
from .config import Settings
from .errors import DocumentError, QAIndexError
from .present import place_label, plural
from .stores import STORES, StoreConfig


def _progress_bar(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar driven by progress(done, total) callbacks, and a function that closes it."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=description, unit="passage", file=sys.stderr)
        bar["bar"].update(done - bar["bar"].n)

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _print_report(report: IndexReport, as_json: bool) -> None:
    if as_json:
        _print_json(report.to_dict())
        return
    for label, names in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
        for name in names:
            print(f"{label:9} {name}")
    if report.unchanged:
        print(f"unchanged {len(report.unchanged)} document(s)")
    for name, error in report.errors.items():
        print(f"error     {name if name.isprintable() else ascii(name)}: {error}", file=sys.stderr)
    print(f"{plural(report.passages, 'passage')} in the index; embedded {report.embedded} in {report.seconds:.1f} s")


def _bot(args: argparse.Namespace) -> QABot:
    return QABot(index_dir=args.index, docs_dir=args.docs, model=args.model)


def cmd_index(args: argparse.Namespace) -> int:
    bot = _bot(args)
    if args.action == "migrate":
        return _migrate(bot, args)
    if args.action == "verify":
        store = bot.location.verify(full=True)
        print(f"ok: {len(store.documents)} document(s), {plural(len(store.chunks), 'passage')} in {bot.location.describe()}")
        return 0
    if args.action == "list":
        documents = bot.documents()
        if args.json:
            _print_json([info.__dict__ for info in documents])
        else:
            for info in documents:
                print(f"{info.name}\t{info.size} bytes\t{plural(info.chunks, 'passage')}\t{info.embedded_with or '?'}")
            store = bot.store
            print(f"{len(documents)} document(s), {plural(len(store.chunks), 'passage')}, model {store.model}")
        return 0
    progress, close = _progress_bar("embedding")
    try:
        if args.action == "build":
            report = bot.rebuild(progress=progress)
        elif args.action == "add":
            report = bot.add_documents(args.paths, progress=progress)
        elif args.action == "update":
            report = bot.update(progress=progress)
        else:
            report = bot.remove_documents(args.paths)
    finally:
        close()
    _print_report(report, args.json)
    return 1 if report.errors and not (report.added or report.updated or report.removed or report.unchanged) else 0


def _migrate(bot: QABot, args: argparse.Namespace) -> int:
    if not args.to:
        print("qa-bot index migrate: say where to, e.g. --to milvus", file=sys.stderr)
        return 2
    config = StoreConfig(kind=args.to, milvus_uri=args.milvus_uri or StoreConfig().milvus_uri)
    store = bot.migrate(config)
    print(f"copied {len(store.documents)} document(s), {plural(len(store.chunks), 'passage')} into {args.to}; "
          "nothing re-embedded")
    setting = f"QA_BOT_STORE={args.to}"
    if args.to == "milvus":
        setting += f" QA_BOT_MILVUS_URI={config.milvus_uri or bot.index_dir / 'milvus.db'}"
    print(f"use it with: {setting}")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    bot = _bot(args)
    bot.ensure_index()
    passages = bot.retrieve(args.question, k=args.k)
    if args.json:
        _print_json([p.to_dict() for p in passages])
        return 0
    for rank, passage in enumerate(passages, 1):
        print(f"[{rank}] {passage.score:.3f}  {place_label(passage)}")
        print(f"    {passage.text}\n")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    bot = _bot(args)
    bot.ensure_index()
    answer = bot.ask(args.question)
    if args.json:
        _print_json(answer.to_dict())
        return 0
    if answer.short is not None:  # the direct answer first, bold on a terminal
        print(f"\033[1m{answer.short.text}\033[0m" if sys.stdout.isatty() else answer.short.text)
    print(answer.text)
    print()
    for n, passage in enumerate(answer.citations, 1):
        quoted = next((q.start for q in answer.quotes if q.citation == n), None)
        print(f"[{n}] {place_label(passage, quoted)}")
        if args.passages:
            print(f"    {passage.text}\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_table

    bot = QABot(index_dir=args.index, docs_dir=args.docs, model=args.model)
    if args.docs is not None:
        progress, close = _progress_bar("embedding")
        try:
            bot.update(progress=progress)
        finally:
            close()
    else:
        bot.ensure_index()
    results = evaluate(bot, Path(args.questions), k=args.k)
    if args.json:
        _print_json(results)
    else:
        print(format_table(results))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web import serve  # imports gradio: only to serve

    serve(index_dir=args.index, docs_dir=args.docs, model=args.model, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="qa-bot", description="Offline question answering over Chinese documents.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", type=Path, default=None, help=f"index folder (default {settings.index_dir})")
    common.add_argument("--docs", type=Path, default=None, help=f"documents folder (default {settings.docs_dir})")
    common.add_argument("--model", default=None, help="sentence-transformers model name or folder (default: bundled e5-small)")
    common.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common], help="build or change the index")
    index.add_argument("action", choices=["build", "add", "remove", "update", "list", "verify", "migrate"])
    index.add_argument("paths", nargs="*", help="files to add, or document names to remove")
    index.add_argument("--to", choices=STORES, help="migrate: the store to copy the index into")
    index.add_argument("--milvus-uri", default=None, help="migrate --to milvus: Milvus Lite file or http://host:19530")
    index.set_defaults(func=cmd_index)

    retrieve = commands.add_parser("retrieve", parents=[common], help="print the best passages for a question")
    retrieve.add_argument("question")
    retrieve.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    retrieve.set_defaults(func=cmd_retrieve)

    ask = commands.add_parser("ask", parents=[common], help="answer a question with cited quotations")
    ask.add_argument("question")
    ask.add_argument("--passages", action="store_true", help="also print the full text of every cited passage")
    ask.set_defaults(func=cmd_ask)

    evaluation = commands.add_parser("eval", parents=[common], help="score retrieval and answers on a question file; say why each answer missed")
    evaluation.add_argument("questions", help="JSONL file of {question, answers, [source, start, end]}")
    evaluation.add_argument("-k", type=int, default=10, help="passages retrieved per question; a missed gold answer none of them holds is not_retrieved (default 10)")
    evaluation.set_defaults(func=cmd_eval)

    serve = commands.add_parser("serve", parents=[common], help="start the web chat")
    serve.add_argument("--host", default=settings.host, help=f"address to listen on (default {settings.host})")
    serve.add_argument("--port", type=int, default=settings.port, help=f"port (default {settings.port})")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "index" and args.action in ("add", "remove") and not args.paths:
        print(f"qa-bot index {args.action}: name at least one file", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, DocumentError, QAIndexError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"qa-bot: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
