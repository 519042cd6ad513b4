"""Fitted ensembles of regression trees compiled into flat arrays and run with vectorized numpy.

scikit-learn's own ``predict`` costs milliseconds per call whatever the batch size (input
validation, joblib or OpenMP, one compiled call per tree). :func:`compile_forest` (a random
forest) and :func:`models.compiled_boosting.compile_boosting` (gradient boosting) lay the nodes
of all trees out once, at model load, so that a batch is evaluated by a fixed number of
whole-array numpy operations: every (tree, row) pair steps one node down per iteration, at most
the deepest tree's depth times.

Layout: nodes are numbered level by level, all trees together (the roots of trees 0..T-1 are
slots 0..T-1, then every node at depth 1, and so on), and the two children of a node are adjacent
slots, ``child`` (left) and ``child + 1`` (right). One step is therefore

    node = child[node] + (x[feature[node]] > threshold[node])

A leaf is its own child and has an infinite threshold, so a finished path stays where it is.

Both of scikit-learn's tree walkers send a row left when ``x[feature] <= threshold`` and NaN to
the side the fitted node recorded in ``missing_go_to_left``. Two things differ between the
ensembles, and a :class:`CompiledForest` is told both:

- What is compared. Decision trees (``sklearn/tree/_tree.pyx``, ``Tree._apply_dense``) convert
  the features to float32 first and compare that with the float64 threshold
  (``float32_features=True``); histogram gradient boosting
  (``sklearn/ensemble/_hist_gradient_boosting/_predictor.pyx``) compares the float64 features
  as they are (``float32_features=False``).
- How the trees' values combine (``combine``). :class:`TreeMean`: a random forest's mean, summed
  tree by tree in the forest's order before dividing, as ``RandomForestRegressor.predict`` does.
  :class:`BaselineSum`: gradient boosting's raw prediction, zeros plus the baseline, then each
  iteration's tree added in order, as ``HistGradientBoostingRegressor`` accumulates it.

Leaf values are copied as they are; with the same comparisons and the same order of additions,
the results are scikit-learn's bit for bit.

>>> from sklearn.ensemble import RandomForestRegressor
>>> rng = np.random.default_rng(0)
>>> X, y = rng.uniform(size=(200, 3)), rng.normal(size=200)
>>> fitted = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
>>> forest = compile_forest(fitted)
>>> forest.n_trees, forest.n_features, forest.depth
(5, 3, 4)
>>> bool(np.array_equal(forest.predict(X), fitted.predict(X)))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

_TREE_LEAF = -1  # scikit-learn's child index of a leaf


def forest_mean(per_tree: np.ndarray) -> np.ndarray:
    """The mean over trees (axis 0) summed in tree order, as ``RandomForestRegressor.predict``
    accumulates it (numpy's ``sum`` may pair the terms differently, changing the last bits)."""
    if per_tree.shape[1] == 0:
        return np.empty(0)
    return np.cumsum(per_tree, axis=0)[-1] / per_tree.shape[0]


def boosted_sum(per_tree: np.ndarray, baseline: float) -> np.ndarray:
    """``baseline`` plus the trees' values (axis 0) added one at a time in tree order, as
    ``HistGradientBoostingRegressor`` accumulates its raw prediction (zeros, plus the
    baseline, plus each iteration's tree)."""
    n_trees, n_rows = per_tree.shape
    steps = np.empty((n_trees + 1, n_rows))
    steps[0] = 0.0 + baseline
    steps[1:] = per_tree
    return _accumulated(steps)


def _accumulated(steps: np.ndarray) -> np.ndarray:
    """The sum of the rows of ``steps`` added strictly in order (an accumulation, unlike numpy's
    ``sum``, never pairs terms), overwriting ``steps``."""
    np.add.accumulate(steps, axis=0, out=steps)
    out: np.ndarray = steps[-1].copy()
    return out


@dataclass(frozen=True)
class TreeMean:
    """Combine trees as a random forest does: their mean."""

    def __call__(self, per_tree: np.ndarray) -> np.ndarray:
        return forest_mean(per_tree)

    def of_leaves(self, values: np.ndarray, leaves: np.ndarray, n_trees: int) -> np.ndarray:
        """The same from the leaf slots of every (tree, row) pair, tree-major."""
        return forest_mean(values.take(leaves).reshape(n_trees, -1))


@dataclass(frozen=True)
class BaselineSum:
    """Combine trees as gradient boosting with an identity link does: the baseline (the fitted
    constant) plus every tree's value, in the order of the iterations."""

    baseline: float

    def __call__(self, per_tree: np.ndarray) -> np.ndarray:
        return boosted_sum(per_tree, self.baseline)

    def of_leaves(self, values: np.ndarray, leaves: np.ndarray, n_trees: int) -> np.ndarray:
        """The same from the leaf slots of every (tree, row) pair, tree-major: the leaf values
        are taken straight into the rows after the baseline's (no per-tree array to copy)."""
        n_rows = leaves.size // n_trees
        flat = np.empty(leaves.size + n_rows)
        flat[:n_rows] = 0.0 + self.baseline
        values.take(leaves, out=flat[n_rows:])
        return _accumulated(flat.reshape(n_trees + 1, n_rows))


Combination: TypeAlias = TreeMean | BaselineSum
TREE_MEAN = TreeMean()


class CompiledForest:
    """The trees of a fitted ensemble as flat, read-only arrays (safe to share between threads).

    Build it with :func:`compile_forest`, :func:`models.compiled_boosting.compile_boosting` or
    :func:`compile_trees`. ``X`` given to its methods has one row per sample and ``n_features``
    columns; with ``float32_features`` it is converted to float32 as scikit-learn's decision
    trees do, otherwise compared as float64. ``combine`` turns the per-tree values into the
    ensemble's prediction. Raises ValueError when ``X`` has the wrong shape, or holds NaN and the
    trees record no direction for it.
    """

    def __init__(
        self,
        *,
        feature: np.ndarray,
        threshold: np.ndarray,
        child: np.ndarray,
        missing_right: np.ndarray | None,
        value: np.ndarray,
        n_trees: int,
        n_features: int,
        depth: int,
        combine: Combination = TREE_MEAN,
        float32_features: bool = True,
    ) -> None:
        sizes = {len(a) for a in (feature, threshold, child, value, missing_right) if a is not None}
        if len(sizes) != 1 or n_trees > min(sizes):
            raise ValueError("the node arrays must have one length, at least the number of trees")
        if not np.all((feature >= 0) & (feature < n_features)):
            raise ValueError(f"node features must be column indices in [0, {n_features})")
        self._feature = _frozen(feature, np.intp)
        self._threshold = _frozen(threshold, np.float64)
        self._child = _frozen(child, np.intp)
        self._missing_right = None if missing_right is None else _frozen(missing_right, np.bool_)
        self._value = _frozen(value, np.float64)
        self._roots = _frozen(np.arange(n_trees), np.intp)
        self.n_trees = n_trees
        self.n_features = n_features
        self.depth = depth
        self.combine = combine
        self.float32_features = float32_features

    @property
    def node_count(self) -> int:
        return len(self._value)

    def evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ensemble's predictions, shape (rows,), and every tree's, shape (trees, rows).

        One traversal gives both: for a random forest the first equals
        ``RandomForestRegressor.predict``, row ``i`` of the second ``estimators_[i].predict``.
        """
        per_tree = self.tree_predictions(X)
        return self.combine(per_tree), per_tree

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's predictions, shape (rows,)."""
        return self.combine.of_leaves(
            self._value, self._leaves(self._as_compared_values(X)), self.n_trees
        )

    def tree_predictions(self, X: np.ndarray) -> np.ndarray:
        """Every tree's prediction, shape (trees, rows)."""
        rows = self._as_compared_values(X)
        leaves = self._leaves(rows)
        return self._value.take(leaves).reshape(self.n_trees, rows.shape[0])

    def _as_compared_values(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected (rows, {self.n_features}) features, got shape {X.shape}")
        if not self.float32_features:
            return np.ascontiguousarray(X, dtype=np.float64)
        # float32 first, as scikit-learn does before it walks a tree; back to float64 so that every
        # comparison below is float64 against float64, which is exact for float32 values.
        return np.ascontiguousarray(X, dtype=np.float32).astype(np.float64)

    def _leaves(self, rows: np.ndarray) -> np.ndarray:
        """The leaf slot of every (tree, row) pair, tree-major: pair ``t * rows + r``."""
        n_rows = rows.shape[0]
        flat = rows.ravel()
        nan_present = bool(np.isnan(flat).any())
        if nan_present and self._missing_right is None:
            raise ValueError(
                "features contain NaN, and these trees (fitted with a scikit-learn that does "
                "not record missing_go_to_left) do not say where NaN goes"
            )
        if n_rows == 1:
            # One row: its values are indexed by feature directly; no per-pair row offset.
            node = self._roots.copy()
            offset = None
        else:
            node = np.repeat(self._roots, n_rows)
            offset = np.tile(np.arange(0, n_rows * self.n_features, self.n_features), self.n_trees)
        feature, threshold, child = self._feature, self._threshold, self._child
        missing_right = self._missing_right if nan_present else None
        for _ in range(self.depth):
            column = feature.take(node)
            if offset is not None:
                column += offset
            x = flat.take(column)
            # NaN > threshold is False: NaN goes left unless the node says otherwise.
            right = x > threshold.take(node)
            if missing_right is not None:
                right |= np.isnan(x) & missing_right.take(node)
            node = child.take(node)
            node += right
        return node


def compile_forest(estimator: Any) -> CompiledForest:
    """Compile a fitted scikit-learn forest of single-output regression trees (a
    ``RandomForestRegressor`` or ``ExtraTreesRegressor``). Raises ValueError otherwise."""
    estimators = getattr(estimator, "estimators_", None)
    if not estimators:
        raise ValueError("the forest is not fitted")
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int):
        raise ValueError("the forest does not say how many features it takes")
    trees = [_tree_of(member, n_features) for member in estimators]
    sizes = np.array([tree.node_count for tree in trees], dtype=np.intp)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
    missing_lists = [getattr(t, "missing_go_to_left", None) for t in trees]
    return compile_trees(
        left=np.concatenate(
            [_shifted(t.children_left, s) for t, s in zip(trees, starts, strict=True)]
        ),
        right=np.concatenate(
            [_shifted(t.children_right, s) for t, s in zip(trees, starts, strict=True)]
        ),
        feature=np.concatenate([t.feature for t in trees]),
        threshold=np.concatenate([t.threshold for t in trees]),
        value=np.concatenate([t.value[:, 0, 0] for t in trees]),
        missing_go_to_left=(
            None
            if any(m is None for m in missing_lists)
            else np.concatenate([np.asarray(m, dtype=np.bool_) for m in missing_lists])
        ),
        roots=starts,
        n_features=n_features,
        combine=TREE_MEAN,
        float32_features=True,
    )


def compile_trees(
    *,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    value: np.ndarray,
    missing_go_to_left: np.ndarray | None,
    roots: np.ndarray,
    n_features: int,
    combine: Combination,
    float32_features: bool,
) -> CompiledForest:
    """Lay out the nodes of several trees, given with ids unique across all of them.

    ``left[i]`` and ``right[i]`` are the ids of node ``i``'s children, ``-1`` for a leaf;
    ``roots`` the root of each tree, in the order ``combine`` expects. ``feature``,
    ``threshold`` and ``missing_go_to_left`` are read at split nodes, ``value`` at leaves;
    ``missing_go_to_left`` is None when the trees do not record it (NaN is then refused).
    Raises ValueError when the nodes are not trees that together hold every node once.
    """
    left = np.asarray(left, dtype=np.intp)
    right = np.asarray(right, dtype=np.intp)
    src_feature = np.asarray(feature, dtype=np.intp)
    src_threshold = np.asarray(threshold, dtype=np.float64)
    src_value = np.asarray(value, dtype=np.float64)
    src_missing_left = (
        None if missing_go_to_left is None else np.asarray(missing_go_to_left, dtype=np.bool_)
    )
    total = len(left)

    feature_out = np.zeros(total, dtype=np.intp)
    threshold_out = np.full(total, np.inf)
    child = np.empty(total, dtype=np.intp)
    missing_right = np.zeros(total, dtype=np.bool_)
    value_out = np.empty(total, dtype=np.float64)
    source = np.empty(total, dtype=np.intp)  # the node id placed in each slot

    # Breadth first, all trees at once: `level` holds the ids of the nodes at the current depth,
    # in slot order; their children get the next slots, left then right, in the same order.
    level = np.asarray(roots, dtype=np.intp).copy()
    first_slot, depth = 0, -1
    while level.size:
        depth += 1
        next_slot = first_slot + level.size
        if next_slot > total:
            raise ValueError("a tree of the ensemble is not a tree (a node is reached twice)")
        slots = np.arange(first_slot, next_slot, dtype=np.intp)
        source[slots] = level
        split = left[level] != _TREE_LEAF
        inner, inner_slots = level[split], slots[split]
        value_out[slots] = src_value[level]
        child[slots] = slots
        child[inner_slots] = next_slot + 2 * np.arange(inner.size, dtype=np.intp)
        feature_out[inner_slots] = src_feature[inner]
        threshold_out[inner_slots] = src_threshold[inner]
        if src_missing_left is not None:
            missing_right[inner_slots] = ~src_missing_left[inner]
        level = np.empty(2 * inner.size, dtype=np.intp)
        level[0::2], level[1::2] = left[inner], right[inner]
        first_slot = next_slot
    if first_slot != total or not np.array_equal(np.sort(source), np.arange(total)):
        raise ValueError(
            "a tree of the ensemble is not a tree (its nodes are not each reached once)"
        )
    return CompiledForest(
        feature=feature_out,
        threshold=threshold_out,
        child=child,
        missing_right=None if src_missing_left is None else missing_right,
        value=value_out,
        n_trees=len(roots),
        n_features=n_features,
        depth=max(depth, 0),
        combine=combine,
        float32_features=float32_features,
    )


def _tree_of(member: Any, n_features: int) -> Any:
    tree = getattr(member, "tree_", None)
    if tree is None:
        raise ValueError(f"a member of the forest is a {type(member).__name__}, not a fitted tree")
    if tree.n_outputs != 1 or tree.value.shape[1:] != (1, 1):
        raise ValueError("only forests of single-output regression trees can be compiled")
    if tree.n_features != n_features:
        raise ValueError(f"a tree takes {tree.n_features} features, the forest {n_features}")
    return tree


def _shifted(children: np.ndarray, start: int) -> np.ndarray:
    children = np.asarray(children, dtype=np.intp)
    return np.where(children == _TREE_LEAF, _TREE_LEAF, children + start)


def _frozen(array: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.ascontiguousarray(array, dtype=dtype)
    out.flags.writeable = False
    return out
