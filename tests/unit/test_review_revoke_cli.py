"""``tripwire queue revoke``: an admin ends a reviewer's token and every signed-in session of theirs, through
the real ``tripwire`` parser and main (in process: no subprocess, no Ray)."""

from __future__ import annotations

import pytest

from entrypoints.cli import main
from tripwire.policy import Taxonomy
from tripwire.review.store import ReviewError, open_store

CATEGORIES = Taxonomy.load().names


def test_queue_revoke_ends_a_reviewers_token_and_sessions(tmp_path, capsys):
    db = str(tmp_path / "review.db")
    assert main(["queue", "add-reviewer", "--name", "ana", "--store", db]) == 0
    token = capsys.readouterr().out.split("token ", 1)[1].split()[0]
    store = open_store(db, CATEGORIES)
    try:
        session, _ = store.open_session(token)  # ana signed in to the reviewer app
        assert store.authenticate(session).name == "ana"

        assert main(["queue", "revoke", "--name", "ana", "--store", db]) == 0
        out = capsys.readouterr().out
        assert "ana: token revoked and 1 signed-in session(s) ended" in out
        for revoked in (token, session):
            with pytest.raises(ReviewError) as refused:
                store.authenticate(revoked)
            assert refused.value.status == 401 and refused.value.code == "unauthenticated"
        with pytest.raises(ReviewError, match="the token of ana was revoked"):
            store.open_session(token)  # no new sign-in either

        assert main(["queue", "revoke", "--name", "nobody", "--store", db]) == 2
        assert capsys.readouterr().err.strip() == "tripwire queue: error: no reviewer named 'nobody'"
        assert main(["queue", "revoke", "--store", db]) == 2
        assert "--name" in capsys.readouterr().err
    finally:
        store.close()
