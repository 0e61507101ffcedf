"""MovieLens import: the real ml-latest-small when present, a tiny hand-made copy always."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.data.movielens import import_movielens, load_movielens
from recsys.db import create_engine
from recsys.errors import InvalidInput


def _movielens_dir() -> Path:
    env = os.environ.get("RECSYS_MOVIELENS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared/data/ml-latest-small"


ML_DIR = _movielens_dir()
needs_movielens = pytest.mark.skipif(
    not (ML_DIR / "ratings.csv").is_file(), reason=f"ml-latest-small not found at {ML_DIR}"
)


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
            for t in ("users", "items", "events", "orders")
        }


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    return load_movielens(ML_DIR)


@needs_movielens
def test_real_counts(real: dict[str, pd.DataFrame]) -> None:
    ratings = pd.read_csv(ML_DIR / "ratings.csv")
    events = real["events"]
    assert len(real["users"]) == 610
    assert len(real["items"]) == 9742
    assert (events["event_type"] == "view").sum() == 100836
    assert (events["event_type"] == "click").sum() == (ratings["rating"] >= 4.0).sum()
    assert set(events["event_type"]) == {"view", "click"}
    assert events["event_id"].is_unique
    assert "orders" not in real


@needs_movielens
def test_real_tags_and_timestamps(real: dict[str, pd.DataFrame]) -> None:
    items = real["items"].set_index("item_id")
    toy_story = items.loc["1"]
    assert toy_story["tags"].split("|")[:5] == ["adventure", "animation", "children", "comedy", "fantasy"]
    assert "pixar" in toy_story["tags"].split("|")
    assert toy_story["category"] == "Adventure" and toy_story["industry"] == "movies"
    tagged = items["tags"].dropna()
    assert tagged.str.lower().equals(tagged)
    assert (items["created_at"] <= items["updated_at"]).all()
    users = real["users"]
    assert (users["created_at"] <= users["updated_at"]).all()
    # 964982703 is the first rating in ratings.csv (user 1, movie 1)
    view = real["events"].set_index("event_id").loc["ml-r-1-1"]
    assert view["ts"] == datetime(2000, 7, 30, 18, 45, 3) and view["value"] == 4.0


@needs_movielens
def test_real_loads_into_sqlite(tmp_path: Path, real: dict[str, pd.DataFrame]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/s.db", create_dirs=True)
    written = import_movielens(ML_DIR, engine)
    assert written == {"users": 610, "items": 9742, "events": len(real["events"])}
    assert _counts(engine) == {"users": 610, "items": 9742, "events": written["events"], "orders": 0}


def _tiny(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "movies.csv").write_text(
        "movieId,title,genres\n"
        '1,"Toy Story, The (1995)",Adventure|Animation\n'
        "2,Unrated (1961),Drama\n"
        "3,Untitled,(no genres listed)\n"
    )
    (root / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n10,1,4.5,1000000000\n10,3,2.0,1000000100\n20,1,4.0,1100000000\n"
    )
    (root / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n"
        "20,1,Pixar,1100000050\n"
        "10,1,  pixar ,1000000010\n"
        "10,1,Animation,1000000020\n"
        "20,2,Classic,1200000000\n"
    )
    return root


def test_tiny_mapping(tmp_path: Path) -> None:
    frames = load_movielens(_tiny(tmp_path / "ml"))

    users = frames["users"].set_index("user_id")
    assert list(users.index) == ["10", "20"]
    assert users.loc["10", "created_at"] == datetime(2001, 9, 9, 1, 46, 40)
    assert users.loc["10", "updated_at"] == datetime(2001, 9, 9, 1, 48, 20)
    assert users.loc["20", "updated_at"] == datetime(2008, 1, 10, 21, 20)  # its last tag
    assert users["industry"].isna().all() and users["region"].isna().all()

    items = frames["items"].set_index("item_id")
    toy = items.loc["1"]
    assert toy["title"] == "Toy Story, The (1995)"
    assert toy["description"] == "Toy Story, The (1995). Adventure Animation"
    assert toy["category"] == "Adventure"
    assert toy["tags"] == "adventure|animation|pixar"
    assert toy["created_at"] == datetime(2001, 9, 9, 1, 46, 40)  # first rating
    assert toy["updated_at"] == datetime(2004, 11, 9, 11, 34, 10)  # last tag
    assert (toy["status"], toy["industry"]) == ("active", "movies")
    assert pd.isna(toy["price"])
    unrated = items.loc["2"]
    assert unrated["created_at"] == datetime(1961, 1, 1)  # year in the title
    assert unrated["updated_at"] == datetime(2008, 1, 10, 21, 20)
    assert unrated["tags"] == "drama|classic"
    untitled = items.loc["3"]
    assert (untitled["category"], untitled["description"]) == ("unknown", "Untitled")
    assert pd.isna(untitled["tags"])

    events = frames["events"].set_index("event_id").sort_index()
    assert list(events.index) == ["ml-c-10-1", "ml-c-20-1", "ml-r-10-1", "ml-r-10-3", "ml-r-20-1"]
    assert list(events["event_type"]) == ["click", "click", "view", "view", "view"]
    assert list(events["value"]) == [4.5, 4.0, 4.5, 2.0, 4.0]
    assert events.loc["ml-c-10-1", "ts"] == events.loc["ml-r-10-1", "ts"]
    assert set(events["source"]) == {"movielens"}
    assert events["request_id"].isna().all()
    assert (events["updated_at"] == events["ts"]).all()


def test_tiny_like_threshold_and_sqlite(tmp_path: Path) -> None:
    root = _tiny(tmp_path / "ml")
    frames = load_movielens(root, like_threshold=4.5)
    assert (frames["events"]["event_type"] == "click").sum() == 1
    engine = create_engine(f"sqlite:///{tmp_path}/s.db", create_dirs=True)
    assert import_movielens(root, engine) == {"users": 2, "items": 3, "events": 5}
    assert import_movielens(root, engine) == {"users": 2, "items": 3, "events": 5}
    assert _counts(engine) == {"users": 2, "items": 3, "events": 5, "orders": 0}
    with engine.connect() as conn:
        ts = conn.execute(
            sa.select(sa.column("ts"))
            .select_from(sa.table("events"))
            .where(sa.column("event_id") == "ml-r-10-1")
        ).scalar_one()
    assert str(ts).startswith("2001-09-09 01:46:40")


@pytest.mark.parametrize("name", ["ratings.csv", "movies.csv", "tags.csv"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    root = _tiny(tmp_path / "ml")
    (root / name).unlink()
    with pytest.raises(InvalidInput, match=rf"movielens: {name} not found in "):
        load_movielens(root)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a directory"):
        load_movielens(tmp_path / "absent")
    root = _tiny(tmp_path / "ml")
    with (root / "ratings.csv").open("a") as fh:
        fh.write("10,99,3.0,1000000000\n")
    with pytest.raises(InvalidInput, match="ratings.csv: movieId 99 is not in movies.csv"):
        load_movielens(root)
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n10,1,good,1\n")
    with pytest.raises(InvalidInput, match=r"ratings.csv:2: rating: 'good' is not a number"):
        load_movielens(root)
    (root / "ratings.csv").write_text("userId,movieId,timestamp\n10,1,1\n")
    with pytest.raises(InvalidInput, match="ratings.csv: missing column"):
        load_movielens(root)
