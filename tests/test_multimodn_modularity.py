"""MultiModN Appendix B modularity: closed form vs networkx vs the paper's printed formula."""
import networkx as nx
import numpy as np
import pytest

from mmrepro.papers.multimodn.modularity import modularity_networkx, modularity_score, module_graph, paper_modularity

SIZES = [(m, t) for m in range(1, 13) for t in range(1, 9)]


@pytest.mark.parametrize("n_mod,n_task", [(1, 1), (2, 1), (3, 4), (7, 2)])
def test_graph_structure(n_mod, n_task):
    graph, groups = module_graph(n_mod, n_task)
    assert graph.number_of_nodes() == n_mod * (n_task + 2)
    assert graph.number_of_edges() == n_mod * (n_task + 2) - 1  # paper: m = |M|(|T|+2) - 1
    assert nx.is_tree(graph)
    assert len(groups) == n_mod and set().union(*groups) == set(graph.nodes)
    for g in groups:
        assert graph.subgraph(g).number_of_edges() == n_task + 1
        assert nx.is_connected(graph.subgraph(g))
    for i in range(1, n_mod):  # a single edge s_i - e_{i+1} joins consecutive modules
        a, b = groups[i - 1], groups[i]
        between = {frozenset(e) for e in graph.edges if (e[0] in a and e[1] in b) or (e[0] in b and e[1] in a)}
        assert between == {frozenset((f"s{i}", f"e{i + 1}"))}


def test_closed_form_matches_networkx_for_many_sizes():
    for n_mod, n_task in SIZES:
        assert modularity_score(n_mod, n_task) == pytest.approx(modularity_networkx(n_mod, n_task), abs=1e-12)
    assert modularity_score(40, 30) == pytest.approx(modularity_networkx(40, 30), abs=1e-12)


def _group_matrix(n_mod, n_task, off_diagonal):
    m = n_mod * (n_task + 2) - 1
    g = np.diag(np.full(n_mod, (n_task + 1) / m))
    idx = np.arange(n_mod - 1)
    g[idx, idx + 1] = g[idx + 1, idx] = off_diagonal / m
    return g


def test_paper_formula_is_its_matrix_and_newman_normalisation_fixes_it():
    for n_mod, n_task in SIZES:
        if n_mod == 1:
            continue
        paper_g = _group_matrix(n_mod, n_task, 1.0)  # Appendix B: 1/m off the diagonal
        assert np.trace(paper_g) - (paper_g @ paper_g).sum() == pytest.approx(paper_modularity(n_mod, n_task))
        newman_e = _group_matrix(n_mod, n_task, 0.5)  # half of each between-group edge per entry
        assert newman_e.sum() == pytest.approx(1.0)
        assert paper_g.sum() > 1.0
        q = np.trace(newman_e) - (newman_e @ newman_e).sum()
        assert q == pytest.approx(modularity_networkx(n_mod, n_task), abs=1e-12)
        m = n_mod * (n_task + 2) - 1
        gap = (n_mod * (2 * n_task + 5) - 2 * n_task - 6.5) / m**2
        assert modularity_score(n_mod, n_task) - paper_modularity(n_mod, n_task) == pytest.approx(gap)
        assert paper_modularity(n_mod, n_task) < modularity_score(n_mod, n_task)


def test_single_module_is_monolithic():
    for n_task in range(1, 6):
        assert modularity_score(1, n_task) == 0.0 == modularity_networkx(1, n_task)
        assert paper_modularity(1, n_task) == pytest.approx(2 / (n_task + 1) ** 2)  # formula assumes M >= 2


def test_limits_and_monotonicity():
    q = np.array([[modularity_score(m, t) for t in range(1, 30)] for m in range(1, 30)])
    assert np.all(np.diff(q, axis=0) > 0)  # more modalities -> more modular
    assert np.all(np.diff(q[1:], axis=1) > 0)  # more tasks -> more modular (M >= 2)
    for t in (1, 3, 10):
        assert modularity_score(10**6, t) == pytest.approx((t + 1) / (t + 2), abs=1e-5)
    for m in (2, 5, 10):
        assert modularity_score(m, 10**6) == pytest.approx(1 - 1 / m, abs=1e-5)
    assert modularity_score(1000, 1000) > 0.998
    assert 0.0 <= q.min() and q.max() < 1.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_sizes(bad):
    for fn in (modularity_score, modularity_networkx, paper_modularity, module_graph):
        with pytest.raises(ValueError, match="n_modalities must be an integer >= 1"):
            fn(bad, 2)
        with pytest.raises(ValueError, match="n_tasks must be an integer >= 1"):
            fn(2, bad)
