"""Collaborative-filtering channels: item-item co-occurrence (itemcf) and user-user (usercf)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsys.recall.base import (
    ChannelParams,
    HistoryParams,
    Hits,
    NeighbourChannel,
    RecallChannel,
    RecallContext,
    lists_from_entries,
)
from recsys.recall.data import RecallData
from recsys.recall.lists import sparse_topn, top_k


class ItemCFParams(HistoryParams):
    min_interactions: int = Field(10, ge=0)
    neighbours: int = Field(50, ge=1, description="neighbours kept per item")
    max_items_per_user: int = Field(500, ge=0, description="most recent items per user; 0 = all")


class ItemCF(NeighbourChannel):
    """sim(i, j) = sum_u iuf(u) sqrt(r_ui r_uj) / sqrt(n_i n_j).

    ``r_ui`` is the decayed interaction strength (sum of event weight x 0.5**(age/half_life)),
    ``iuf(u) = 1/log(1 + |items of u|)`` damps users who interact with everything, and
    ``n_i = sum_u r_ui``; with unit strengths this is the classic IUF-weighted cosine.
    """

    type = "itemcf"
    Params: ClassVar[type[ChannelParams]] = ItemCFParams

    def _fit(self, data: RecallData) -> str | None:
        p: ItemCFParams = self.params  # type: ignore[assignment]
        r, _ = data.matrix(p.half_life_days, p.max_items_per_user)
        per_user = np.diff(r.indptr)
        iuf = np.zeros(len(per_user))
        has = per_user > 0
        iuf[has] = 1.0 / np.log1p(per_user[has])
        mass = np.asarray(r.sum(axis=0)).ravel()
        inv_norm = np.zeros_like(mass)
        inv_norm[mass > 0] = 1.0 / np.sqrt(mass[mass > 0])
        b = (sp.diags(np.sqrt(iuf)) @ r.sqrt() @ sp.diags(inv_norm)).tocsr()
        rows, cols, scores = sparse_topn(
            b.T.tocsr(), b, p.neighbours, skip_diagonal=True, col_mask=data.active_mask
        )
        if not len(rows):
            return "no two items co-occur in any user's history"
        self.lists = lists_from_entries(data.item_vocab, data.item_vocab, rows, cols, scores)
        self.stats.update(items_with_neighbours=len(self.lists), pairs=len(rows))
        return None


class UserCFParams(ChannelParams):
    min_interactions: int = Field(10, ge=0)
    neighbours: int = Field(50, ge=1, description="similar users kept per user")


class UserCF(RecallChannel):
    """score(u, j) = sum over u's top-M cosine neighbours v that interacted with j of sim(u, v).

    Lists are keyed by user and precomputed at fit (the user's own items left out), so a user
    unknown at fit time gets nothing from this channel.
    """

    type = "usercf"
    Params: ClassVar[type[ChannelParams]] = UserCFParams

    def _fit(self, data: RecallData) -> str | None:
        p: UserCFParams = self.params  # type: ignore[assignment]
        r, users = data.matrix(p.half_life_days)
        norms = np.sqrt(np.asarray(r.multiply(r).sum(axis=1)).ravel())
        inv = np.zeros_like(norms)
        inv[norms > 0] = 1.0 / norms[norms > 0]
        u = (sp.diags(inv) @ r).tocsr()
        rows, cols, sims = sparse_topn(u, u.T.tocsr(), p.neighbours, skip_diagonal=True)
        if not len(rows):
            return "no two users share an item"
        nbrs = sp.csr_matrix((sims, (rows, cols)), shape=(len(users), len(users)))
        seen = (r != 0).astype(np.float64).tocsr()
        rows, cols, scores = sparse_topn(nbrs, seen, p.list_size, col_mask=data.active_mask, exclude=seen)
        if not len(rows):
            return "similar users have no item the user lacks"
        self.lists = lists_from_entries(data.item_vocab, users, rows, cols, scores)
        self.stats.update(users_with_list=len(self.lists), neighbour_pairs=int(nbrs.nnz))
        return None

    def _recall(self, user_id: str, ctx: RecallContext, k: int) -> Hits:
        idx, scores = self.lists.get(user_id)
        return top_k(idx, scores, k, ctx.excluded(self.vocab))
