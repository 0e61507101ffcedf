"""MovieLens ml-latest-small -> contract frames (users, items, events).

The mapping is documented in ``docs/DATA_CONTRACTS.md``; everything here is vectorized so the
100k ratings load in about a second.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from recsys.data.loader import write_tables
from recsys.errors import InvalidInput

SOURCE = "movielens"
INDUSTRY = "movies"
NO_GENRES = "(no genres listed)"
UNKNOWN_CATEGORY = "unknown"

_FILES: dict[str, tuple[str, ...]] = {
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "movies.csv": ("movieId", "title", "genres"),
    "tags.csv": ("userId", "movieId", "tag", "timestamp"),
}


def _read(path: Path, name: str) -> pd.DataFrame:
    file = path / name
    if not file.is_file():
        raise InvalidInput(f"movielens: {name} not found in {path}")
    cols = _FILES[name]
    # ids stay strings: they become contract keys and must not turn into floats on NaN
    dtypes = {c: str for c in ("userId", "movieId", "title", "genres", "tag") if c in cols}
    try:
        frame = pd.read_csv(file, dtype=dtypes, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InvalidInput(f"movielens: {name}: cannot parse: {e}") from e
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InvalidInput(f"movielens: {name}: missing column(s) {', '.join(missing)}")
    frame = frame[list(cols)].copy()
    for c in ("userId", "movieId"):
        if c in frame.columns:
            frame[c] = frame[c].str.strip()
            if (frame[c] == "").any():
                line = int((frame[c] == "").to_numpy().argmax()) + 2
                raise InvalidInput(f"movielens: {name}:{line}: {c}: empty")
    for c in ("rating", "timestamp"):
        if c in frame.columns:
            frame[c] = _numeric(frame[c], name, c)
    return frame


def _numeric(col: pd.Series, name: str, field: str) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna()
    if bad.any():
        pos = int(bad.to_numpy().argmax())
        raise InvalidInput(f"movielens: {name}:{pos + 2}: {field}: {col.iloc[pos]!r} is not a number")
    return values


def _to_utc(seconds: pd.Series) -> pd.Series:
    # unix seconds are UTC by definition; the contract wants naive UTC
    return pd.to_datetime(seconds.astype("int64"), unit="s")


def _item_tags(movies: pd.DataFrame, tags: pd.DataFrame) -> pd.Series:
    """Genres then user tags, lowercased, deduplicated in first-seen order, '|'-joined."""
    genres = movies[["movieId", "genres"]].copy()
    genres["tag"] = genres["genres"].where(genres["genres"] != NO_GENRES, "").str.split("|")
    genres = genres.explode("tag")[["movieId", "tag"]]
    genres["order"] = 0
    # user tags come after genres, in time order, so the genre words lead the list
    user = tags.sort_values("ts", kind="stable")[["movieId", "tag"]].copy()
    user["order"] = 1
    both = pd.concat([genres, user], ignore_index=True)
    # '|' is the separator of the contract, so a tag may not contain it
    both["tag"] = (
        both["tag"].fillna("").str.lower().str.replace("|", " ", regex=False).str.split().str.join(" ")
    )
    both = both[both["tag"] != ""].sort_values("order", kind="stable")
    both = both.drop_duplicates(["movieId", "tag"])
    return both.groupby("movieId", sort=False)["tag"].agg("|".join)


def _items(movies: pd.DataFrame, ratings: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    movies = movies.drop_duplicates("movieId", keep="last").set_index("movieId")
    genre_words = movies["genres"].where(movies["genres"] != NO_GENRES, "").str.replace("|", " ", regex=False)
    first_genre = movies["genres"].str.split("|").str[0]
    year = pd.to_numeric(movies["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    year_ts = pd.to_datetime(year.astype("Int64").astype(str) + "-01-01", errors="coerce")
    first_rating = ratings.groupby("movieId")["ts"].min().reindex(movies.index)
    first_tag = tags.groupby("movieId")["ts"].min().reindex(movies.index)
    # an item with no rating, no year and no tag still needs a stable partition value
    earliest = pd.concat([ratings["ts"], tags["ts"]]).min()
    fallback = earliest if pd.notna(earliest) else pd.Timestamp("1970-01-01")
    created = first_rating.fillna(year_ts).fillna(first_tag).fillna(fallback)
    last = (
        pd.concat([ratings.groupby("movieId")["ts"].max(), tags.groupby("movieId")["ts"].max()], axis=1)
        .max(axis=1)
        .reindex(movies.index)
    )
    updated = pd.concat([last, created], axis=1).max(axis=1)
    title = movies["title"].str.strip()
    description = title.where(genre_words == "", title + ". " + genre_words)
    return pd.DataFrame(
        {
            "item_id": movies.index,
            "title": title.to_numpy(),
            "description": description.to_numpy(),
            "category": first_genre.where(movies["genres"] != NO_GENRES, UNKNOWN_CATEGORY)
            .replace("", UNKNOWN_CATEGORY)
            .to_numpy(),
            "industry": INDUSTRY,
            "tags": _item_tags(movies.reset_index(), tags).reindex(movies.index).to_numpy(),
            "price": None,
            "status": "active",
            "created_at": created.to_numpy(),
            "updated_at": updated.to_numpy(),
        }
    )


def _users(ratings: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    activity = pd.concat([ratings[["userId", "ts"]], tags[["userId", "ts"]]], ignore_index=True)
    first_rating = ratings.groupby("userId")["ts"].min()
    span = activity.groupby("userId")["ts"].agg(["min", "max"])
    # users who only tagged still get a creation time: their first tag
    created = first_rating.reindex(span.index).fillna(span["min"])
    return pd.DataFrame(
        {
            "user_id": span.index,
            "industry": None,
            "region": None,
            "created_at": created.to_numpy(),
            "updated_at": span["max"].to_numpy(),
        }
    )


def _events(ratings: pd.DataFrame, like_threshold: float) -> pd.DataFrame:
    key = ratings["userId"] + "-" + ratings["movieId"]
    views = pd.DataFrame(
        {
            "event_id": "ml-r-" + key,
            "user_id": ratings["userId"],
            "item_id": ratings["movieId"],
            "event_type": "view",
            "ts": ratings["ts"],
            "value": ratings["rating"].astype(float),
        }
    )
    liked = ratings["rating"] >= like_threshold
    clicks = views[liked].assign(event_id="ml-c-" + key[liked], event_type="click")
    out = pd.concat([views, clicks], ignore_index=True)
    return out.assign(
        ts_offset_minutes=None,
        request_id=None,
        position=None,
        scene=None,
        source=SOURCE,
        updated_at=out["ts"],
    )


def _check_known_movies(frame: pd.DataFrame, name: str, movies: pd.DataFrame) -> None:
    # an event or tag on a movie without a catalogue row would make an item without a title
    unknown = frame.loc[~frame["movieId"].isin(movies["movieId"]), "movieId"].unique()
    if len(unknown):
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise InvalidInput(f"movielens: {name}: movieId {unknown[0]} is not in movies.csv{more}")


def load_movielens(path: Path, *, like_threshold: float = 4.0) -> dict[str, pd.DataFrame]:
    """Read an ml-latest-small directory into contract frames ``users``, ``items``, ``events``.

    Every rating becomes a ``view`` event (``event_id`` ``ml-r-<userId>-<movieId>``) whose
    ``value`` is the rating; a rating ``>= like_threshold`` additionally yields a ``click``
    (``ml-c-<userId>-<movieId>``, same ``ts``), so ``click`` means positive feedback and
    ``view`` means "seen and rated". Free-text tags do not become events: they enrich
    ``items.tags`` (after the genres, lowercased, deduplicated). There are no orders.
    ``ratings.csv``, ``movies.csv`` and ``tags.csv`` must exist; ``links.csv`` is ignored.
    """
    path = Path(path)
    if not path.is_dir():
        raise InvalidInput(f"movielens: {path} is not a directory")
    ratings = _read(path, "ratings.csv")
    movies = _read(path, "movies.csv")
    tags = _read(path, "tags.csv")
    ratings["ts"] = _to_utc(ratings["timestamp"])
    tags["ts"] = _to_utc(tags["timestamp"])
    # a (user, movie) pair is one event id; if rated twice, the latest rating wins
    ratings = ratings.sort_values("ts", kind="stable").drop_duplicates(["userId", "movieId"], keep="last")
    _check_known_movies(ratings, "ratings.csv", movies)
    _check_known_movies(tags, "tags.csv", movies)
    return {
        "users": _users(ratings, tags),
        "items": _items(movies, ratings, tags),
        "events": _events(ratings, like_threshold),
    }


def import_movielens(path: Path, engine: Engine, *, like_threshold: float = 4.0) -> dict[str, int]:
    """Load ml-latest-small from ``path`` and upsert it into ``engine``; rows per table."""
    return write_tables(engine, load_movielens(path, like_threshold=like_threshold))
