"""Newman modularity of the MultiModN module graph (MultiModN paper, Section 4 and Appendix B).

The graph (paper Figure 7): for each modality ``i`` a module made of an encoder node ``e_i``,
a state node ``s_i`` and ``|T|`` decoder nodes ``d_i1 .. d_i|T|``; inside a module ``e_i - s_i`` and
``s_i - d_ij`` (``|T| + 1`` edges); consecutive modules are joined by ``s_i - e_{i+1}``
(``|M| - 1`` edges).  Hence ``m = |M|(|T| + 2) - 1`` edges, as the paper states.  The grouping
is one group per module.

Newman's modularity is ``Q = sum_i (e_ii - a_i**2)`` where ``e_ii`` is the fraction of edges
inside group ``i`` and ``a_i`` the fraction of edge *ends* attached to group ``i``.  For this graph
``e_ii = (|T| + 1)/m`` and ``a_i = (2(|T| + 1) + k_i) / (2m)`` with ``k_i`` the number of
neighbouring modules (1 for the first and last module, 2 otherwise).  Summing gives the closed form
(``M = |M| >= 2``, ``T = |T|``)::

    Q = M(T+1)/m - [(M-2)(T+2)**2 + 2(T+3/2)**2] / m**2
      = [M**2 (T+1)(T+2) - M(T+1) - M(T+2)**2 + 2T + 7/2] / m**2,

and ``Q = 0`` for ``M = 1`` (a single group).  This equals ``networkx``'s modularity of the
constructed graph for every size (tests check it).

Why the paper's Appendix B formula gives smaller numbers: it builds the group matrix ``G`` with
``1/m`` on the off-diagonals, i.e. it counts every edge between modules ``i`` and ``i+1`` in full
in both ``g_{i,i+1}`` and ``g_{i+1,i}``.  Then the entries of ``G`` sum to ``(M(T+3) - 2)/m > 1``
and the row sums are not the fractions of edge ends ``a_i``.  Newman's matrix must sum to 1: a
between-group edge contributes ``1/(2m)`` to each of the two symmetric entries.  With ``1/(2m)``
the paper's own derivation (``Q = tr(G) - ||G^2||``) reproduces the value above.  The paper's
printed expression ``Q_paper = M(T+1)/m - (MT^2 + 6MT + 9M - 4T - 10)/m^2`` is algebraically
consistent with its ``G`` (so it is not a typo) but lies below the true value by
``(M(2T + 5) - 2T - 13/2)/m^2``, a gap that vanishes as ``M`` grows; for ``M = 1`` it gives
``2/(T+1)^2`` instead of 0 because its tridiagonal sums assume two end modules.

Limits (both versions): for fixed ``T``, ``Q -> (T+1)/(T+2)`` as ``M -> oo``; for fixed ``M``,
``Q -> 1 - 1/M`` as ``T -> oo``; so ``Q -> 1`` only when modalities *and* tasks grow, which is
what the paper's "tends to 1 with each added modality and each added task" means.  A monolithic
model (one group, P-Fusion) has ``Q = 0``.
"""
from __future__ import annotations

import networkx as nx

__all__ = ["module_graph", "modularity_score", "modularity_networkx", "paper_modularity"]


def _check_sizes(n_modalities: int, n_tasks: int) -> None:
    for name, value in (("n_modalities", n_modalities), ("n_tasks", n_tasks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1 (a MultiModN has at least one "
                             f"encoder and one decoder), got {value!r}.")


def module_graph(n_modalities: int, n_tasks: int) -> tuple[nx.Graph, list[set[str]]]:
    """The MultiModN module graph of Appendix B (Figure 7) and its grouping, one set per module.

    Nodes are named ``e{i}``, ``s{i}`` and ``d{i}_{j}`` (``i`` = module, ``j`` = task, from 1).
    """
    _check_sizes(n_modalities, n_tasks)
    graph = nx.Graph()
    groups: list[set[str]] = []
    for i in range(1, n_modalities + 1):
        decoders = [f"d{i}_{j}" for j in range(1, n_tasks + 1)]
        graph.add_edge(f"e{i}", f"s{i}")
        graph.add_edges_from((f"s{i}", d) for d in decoders)
        if i > 1:
            graph.add_edge(f"s{i - 1}", f"e{i}")
        groups.append({f"e{i}", f"s{i}", *decoders})
    return graph, groups


def modularity_networkx(n_modalities: int, n_tasks: int) -> float:
    """Q computed by ``networkx.algorithms.community.modularity`` on :func:`module_graph`."""
    graph, groups = module_graph(n_modalities, n_tasks)
    return float(nx.algorithms.community.modularity(graph, groups))


def modularity_score(n_modalities: int, n_tasks: int) -> float:
    """Newman's modularity Q of a MultiModN with ``n_modalities`` encoders and ``n_tasks`` decoders.

    Closed form derived in the module docstring (MultiModN Appendix B with Newman's normalisation
    of the group matrix); equal to :func:`modularity_networkx`.
    """
    _check_sizes(n_modalities, n_tasks)
    M, T = n_modalities, n_tasks
    if M == 1:
        return 0.0
    m = M * (T + 2) - 1
    return M * (T + 1) / m - ((M - 2) * (T + 2) ** 2 + 2 * (T + 1.5) ** 2) / m**2


def paper_modularity(n_modalities: int, n_tasks: int) -> float:
    """The expression printed in MultiModN Appendix B: ``tr(G) - ||G^2||`` with the paper's ``G``.

    Kept to show the discrepancy explained in the module docstring; use :func:`modularity_score`.
    """
    _check_sizes(n_modalities, n_tasks)
    M, T = n_modalities, n_tasks
    m = M * (T + 2) - 1
    return M * (T + 1) / m - (M * T**2 + 6 * M * T + 9 * M - 4 * T - 10) / m**2
