"""Cache entries (trigger.toolchain.store_entry): made once when several processes ask for the same one."""

import threading
import time

from trigger.toolchain import entry_problem, store_entry


def test_concurrent_stores_of_one_entry_fill_it_once(tmp_path):
    """Two builders of the same entry at once (two verifications of one design on two workers): the second waits
    for the first and uses its entry instead of compiling again; a different entry does not wait."""
    final = tmp_path / "cache" / "sim-abc"
    fills, results = [], []

    def fill(folder):
        fills.append(folder)
        time.sleep(0.5)
        (folder / "simulator").write_text("built once\n")

    threads = [threading.Thread(target=lambda: results.append(store_entry(final, "abc", fill))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fills) == 1 and results == [final, final]
    assert entry_problem(final, "abc") is None and (final / "simulator").read_text() == "built once\n"
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".sim-abc-")]  # no private folder left

    store_entry(final, "abc", fill)  # already there: not filled again
    assert len(fills) == 1
    other = store_entry(tmp_path / "cache" / "sim-def", "def", fill)
    assert len(fills) == 2 and entry_problem(other, "def") is None
