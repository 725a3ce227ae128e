"""`charrnn cache`: the corpus caches train keeps (charrnn.corpus_cache), listed or cleared."""
from __future__ import annotations

import typer

from charrnn.cli.app import app, emit_json, note
from charrnn.corpus_cache import cache_dir, cache_entries, clear_cache


@app.command()
def cache(
    clear: bool = typer.Option(False, "--clear", help="Remove every corpus cache."),
    json_output: bool = typer.Option(False, "--json", help="Print the caches as one JSON object."),
):
    """List the corpus caches (ids encoded once per corpus, memory-mapped by later runs), or clear them.

    They live in $CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn, else
    ~/.cache/charrnn. A cache is rebuilt by itself when its corpus changes;
    train --no-cache reads a corpus without one.

    Examples:

      charrnn cache

      charrnn cache --clear
    """
    if clear:
        freed = clear_cache()
        if json_output:
            emit_json({"folder": cache_dir(), "freed_bytes": freed})
        else:
            note(f"removed the corpus caches in {cache_dir()} ({freed:,} bytes)")
        return
    entries = cache_entries()
    if json_output:
        emit_json({"folder": cache_dir(), "caches": entries})
        return
    print(f"corpus caches in {cache_dir()}: {len(entries)}")
    for e in entries:
        files = e["files"][0] + (f" and {len(e['files']) - 1} more" if len(e["files"]) > 1 else "")
        print(f"  {e['chars']:>14,} chars  {e['bytes']:>14,} bytes  {files}")
