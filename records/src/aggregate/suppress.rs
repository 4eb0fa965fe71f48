//! Small-cell suppression, with complementary suppression, for the aggregate
//! tables the record layer publishes.
//!
//! A published table counts data subjects by one or two category fields. A
//! cell that counts a few people (more than zero but fewer than `k`) can
//! single them out, so it is withheld: *primary* suppression. The table's
//! totals are published too, so a withheld cell could often be worked out by
//! subtraction; enough other cells are therefore withheld with it
//! (*complementary* suppression) that no withheld count can be worked out
//! from what is published.
//!
//! # The tables
//!
//! - One-way: cells `c_0 .. c_{R-1}` and the grand total `G = Σ c_i`.
//! - Two-way: interior cells `c_ij` (`R` rows, `C` columns), row totals
//!   `r_i = Σ_j c_ij`, column totals `s_j = Σ_i c_ij` and the grand total `G`.
//!
//! Every one of these numbers is published unless it is suppressed.
//!
//! # The model: a bipartite multigraph
//!
//! This is the standard way to see the problem. Each number of the table,
//! published or not, is an edge of a graph whose vertices carry the table's
//! equations:
//!
//! - Two-way: the *row side* has a vertex per row plus a *total-row* vertex;
//!   the *column side* has a vertex per column plus a *total-column* vertex.
//!   Cell `c_ij` is the edge `row_i — col_j`, row total `r_i` is
//!   `row_i — total-column`, column total `s_j` is `total-row — col_j`, and
//!   `G` is `total-row — total-column`.
//! - One-way: two vertices `A` (row side) and `B` (column side); every cell
//!   and `G` is an edge `A — B` (parallel edges, so a multigraph).
//!
//! Give each edge a sign `σ`: `+1` for interior cells and for the two-way
//! grand total, `-1` for row and column totals and for the one-way grand
//! total. Then every vertex's equation reads `Σ σ_e · x_e = 0` over the edges
//! `e` at that vertex (at `row_i`, `Σ_j c_ij - r_i = 0`; at total-row,
//! `G - Σ_j s_j = 0`; and so on). Move the published values to the right-hand
//! side and the unknowns are the suppressed edges.
//!
//! **A suppressed edge is determined exactly when it is a bridge of the
//! subgraph of suppressed edges.** If it is a bridge, cut it, and take the
//! vertices still joined to one of its ends by suppressed edges; every other
//! edge leaving that set is published. Add up those vertices' equations
//! (row-side vertices with `+`, column-side ones with `-`): every edge inside
//! the set cancels, and what is left is the bridge against published edges
//! only, so it is determined.
//! If it is not a bridge it lies on a cycle of suppressed edges; walking the
//! cycle and alternately adding `+1` and `-1` to `σ · x` (the cycle has even
//! length, as the graph is bipartite) changes no vertex's sum, so the cycle is
//! a free direction of the solutions. In terms of counts: an edge walked from
//! its row-side end to its column-side end *gains* one if `σ = +1` and *loses*
//! one if `σ = -1`; walked the other way, the opposite.
//!
//! **Non-negativity.** An attacker also knows every count is at least zero.
//! If every suppressed count is at least 1 and lies on a cycle of suppressed
//! edges, moving along the cycle by one in either direction keeps every count
//! at least 0, so each suppressed count has at least two feasible values.
//!
//! **The attacker knows zeros are published.** Zero cells are never
//! suppressed (below), and that rule is no secret, so an attacker knows that
//! every suppressed count is at least 1. That is stronger than the above: in
//! the one-way table `[1, 1, 10]` with `k = 3`, suppressing the two 1s gives a
//! bridgeless pattern, but the two withheld cells add up to 2 and neither is
//! 0, so both are 1. A suppressed edge keeps at least two feasible values
//! against this attacker exactly when it lies on a cycle of suppressed edges
//! that can be *walked in one direction* so that every edge which loses one
//! has a count of at least 2 (call such a cycle a *return walk*). If there is
//! one, moving along it by one gives a second solution. Conversely, two
//! different solutions differ by a circulation, and a circulation splits into
//! cycles that agree with it in sign (conformal decomposition), one of which
//! passes the edge and is such a walk. Edges that gain one may have any
//! count, so every edge can always be walked in its gaining direction.
//!
//! # The algorithm
//!
//! 1. Primary: every number (cell, total or grand total) with `0 < x < k` is
//!    suppressed. If `G < k`, every non-zero number is below `k` and so all of
//!    them are suppressed: the table then publishes only its zeros.
//! 2. Bridges: while the suppressed subgraph has a bridge (found by an
//!    iterative depth-first search with low-links, telling parallel edges
//!    apart by edge id), close a return walk through it, as in step 4.
//! 3. Return walks: each suppressed edge without a return walk over
//!    suppressed edges gets one, as in step 4. This is what defeats the
//!    attacker who knows zeros are published; step 2 alone defeats the
//!    attacker who only knows counts are not negative, and is kept as the
//!    textbook rule, found for the whole table in linear time.
//! 4. Closing a walk through edge `e`: a cheapest path (Dijkstra) between
//!    `e`'s ends, walked so that together with `e` it is a return walk,
//!    over suppressed edges (free) and published non-zero edges (cost: their
//!    count first, then whether they are totals, then how many); its
//!    published edges are suppressed. Preferring the smallest counts, cells
//!    over totals, and edges in `e`'s row or column (the path starts and ends
//!    there) follows from the cost.
//!
//! Each round of step 2 suppresses at least one more edge (a bridge lies on
//! no cycle of suppressed edges, so its path has a published edge), so step 2
//! ends. Step 3 is one pass over the edges: suppressing edges only adds return
//! walks, never removes one, so an edge that has one keeps it; and every edge
//! of a walk just closed has that walk.
//!
//! # Zero cells
//!
//! Zero cells are never suppressed, neither as primary cells nor as
//! complements. This is the usual rule: an empty cell is not a small group of
//! people, and nobody can be picked out of it. What a zero does say is
//! something about everyone in its line (if only one cell of a row is
//! non-zero, everyone in that row has that column's category); that is
//! attribute disclosure about a whole group, which small-cell suppression
//! does not set out to prevent. The price of the rule is the stronger
//! attacker above, which step 3 deals with.
//!
//! Complements never need a zero: every non-zero edge has a return walk over
//! non-zero edges in the full graph, on which every edge gains one. In a
//! two-way table a non-zero cell `c_ij` lies on `row_i → col_j → total-row →
//! total-column → row_i` (`c_ij`, `s_j`, `G`, `r_i`), and `s_j`, `G`, `r_i`
//! are all at least `c_ij`, so non-zero; a non-zero total has a non-zero cell
//! in its line (anywhere, for `G`) and lies on that cell's walk. In a one-way
//! table a non-zero cell and `G` form a two-edge walk, and a non-zero `G` has
//! a non-zero cell. So step 4 always finds a path. Should it ever not (a bug),
//! the code fails closed: it suppresses every non-zero number.
//!
//! # What this does not protect against
//!
//! - The bar is two feasible values per suppressed count, not an interval of
//!   a given width: an attacker may still learn that a count is 1 or 2.
//! - An attacker who knows the algorithm can reason beyond the zero rule (for
//!   instance, that a complement was the cheapest choice available).
//! - Each table is protected on its own. The same counts published in several
//!   tables (other breakdowns, other periods) can be combined; that needs the
//!   tables to be suppressed together.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which numbers of a table are suppressed (withheld from publication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppressed {
    /// The interior cells: in order for a one-way table, row-major
    /// (`rows * cols`) for a two-way table.
    pub(crate) cells: Vec<bool>,
    /// The row totals of a two-way table (`rows` of them); empty for a
    /// one-way table.
    pub(crate) row_totals: Vec<bool>,
    /// The column totals of a two-way table (`cols` of them); empty for a
    /// one-way table.
    pub(crate) col_totals: Vec<bool>,
    /// The grand total.
    pub(crate) grand_total: bool,
}

/// Suppresses a one-way table: `counts` are its cells; its grand total is
/// their sum.
///
/// Numbers with `0 < x < k` are suppressed, and enough others with them that
/// no suppressed number can be worked out (see the module docs). `k == 1`
/// suppresses nothing. Panics unless `counts` is non-empty, `k >= 1` and the
/// counts add up to at most `u64::MAX`.
pub(crate) fn suppress_one_way(counts: &[u64], k: u64) -> Suppressed {
    assert!(
        !counts.is_empty(),
        "a one-way table needs at least one cell"
    );
    assert!(k >= 1, "the suppression threshold k must be at least 1");
    let suppressed = suppress(&Graph::one_way(counts), k);
    debug_assert_eq!(suppressed.len(), counts.len() + 1);
    Suppressed {
        cells: suppressed[..counts.len()].to_vec(),
        row_totals: Vec::new(),
        col_totals: Vec::new(),
        grand_total: suppressed[counts.len()],
    }
}

/// Suppresses a two-way table: `counts` are its interior cells, row-major,
/// `rows * cols` of them; its row, column and grand totals are their sums.
///
/// Numbers with `0 < x < k` are suppressed, and enough others with them that
/// no suppressed number can be worked out (see the module docs). `k == 1`
/// suppresses nothing. Panics unless `rows >= 1`, `cols >= 1`,
/// `counts.len() == rows * cols`, `k >= 1` and the counts add up to at most
/// `u64::MAX`. (A table with one column is allowed: its row totals repeat its
/// cells, and the model still holds.)
pub(crate) fn suppress_two_way(counts: &[u64], rows: usize, cols: usize, k: u64) -> Suppressed {
    assert!(
        rows >= 1 && cols >= 1,
        "a two-way table needs a row and a column"
    );
    assert_eq!(
        Some(counts.len()),
        rows.checked_mul(cols),
        "a two-way table needs rows * cols counts"
    );
    assert!(k >= 1, "the suppression threshold k must be at least 1");
    let suppressed = suppress(&Graph::two_way(counts, rows, cols), k);
    let (cells, rest) = suppressed.split_at(rows * cols);
    let (row_totals, rest) = rest.split_at(rows);
    let (col_totals, rest) = rest.split_at(cols);
    debug_assert_eq!(rest.len(), 1);
    Suppressed {
        cells: cells.to_vec(),
        row_totals: row_totals.to_vec(),
        col_totals: col_totals.to_vec(),
        grand_total: rest[0],
    }
}

/// Whether a count must be suppressed for its own sake: it counts somebody,
/// but fewer than `k` people.
fn is_small(count: u64, k: u64) -> bool {
    count > 0 && count < k
}

/// Adds up counts, asserting (a caller precondition) that the sum fits.
fn checked_sum<'a>(counts: impl IntoIterator<Item = &'a u64>) -> u64 {
    let sum = counts
        .into_iter()
        .try_fold(0_u64, |sum, &count| sum.checked_add(count));
    assert!(
        sum.is_some(),
        "the table's counts must add up to at most u64::MAX"
    );
    sum.unwrap_or(u64::MAX)
}

/// One published number of a table, as an edge of the table's graph.
#[derive(Debug, Clone, Copy)]
struct Edge {
    /// Its end on the row side (a row, the total row, or `A`).
    left: usize,
    /// Its end on the column side (a column, the total column, or `B`).
    right: usize,
    /// Whether walking it from `left` to `right` adds one to its count
    /// (`σ = +1`) rather than taking one away (`σ = -1`). Walking it from
    /// `right` to `left` does the opposite.
    gains_left_to_right: bool,
    /// The count.
    count: u64,
    /// Whether it is a total (a row, column or grand total), not a cell.
    total: bool,
}

impl Edge {
    /// An interior cell between a row-side and a column-side vertex (`σ = +1`).
    fn cell(left: usize, right: usize, count: u64) -> Edge {
        let gains_left_to_right = true;
        Edge {
            left,
            right,
            gains_left_to_right,
            count,
            total: false,
        }
    }

    /// A total between a row-side and a column-side vertex, with its sign.
    fn total(left: usize, right: usize, count: u64, gains_left_to_right: bool) -> Edge {
        Edge {
            left,
            right,
            gains_left_to_right,
            count,
            total: true,
        }
    }
}

/// A table's graph (see the module docs). Edge ids follow the order of
/// [`Suppressed`]'s fields: cells, row totals, column totals, grand total.
#[derive(Debug)]
struct Graph {
    /// The edges, by id.
    edges: Vec<Edge>,
    /// For each vertex, the ids of the edges at it.
    incident: Vec<Vec<usize>>,
}

impl Graph {
    /// A graph of `vertices` vertices and no edges yet.
    fn new(vertices: usize) -> Graph {
        Graph {
            edges: Vec::new(),
            incident: vec![Vec::new(); vertices],
        }
    }

    /// Adds an edge, giving it the next id.
    fn push(&mut self, edge: Edge) {
        debug_assert_ne!(edge.left, edge.right, "the graph is bipartite");
        let id = self.edges.len();
        self.incident[edge.left].push(id);
        self.incident[edge.right].push(id);
        self.edges.push(edge);
    }

    /// The graph of a one-way table: vertex 0 is `A`, vertex 1 is `B`.
    fn one_way(counts: &[u64]) -> Graph {
        let grand = checked_sum(counts);
        let mut graph = Graph::new(2);
        for &count in counts {
            graph.push(Edge::cell(0, 1, count));
        }
        graph.push(Edge::total(0, 1, grand, false));
        graph
    }

    /// The graph of a two-way table: vertices `0..rows` are the rows, `rows`
    /// the total row, then the `cols` columns, then the total column.
    fn two_way(counts: &[u64], rows: usize, cols: usize) -> Graph {
        // Every total is at most the grand total, so once it fits they all do.
        let grand = checked_sum(counts);
        let (total_row, total_col) = (rows, rows + 1 + cols);
        let col = |j: usize| rows + 1 + j;
        let mut graph = Graph::new(rows + cols + 2);
        for (at, &count) in counts.iter().enumerate() {
            graph.push(Edge::cell(at / cols, col(at % cols), count));
        }
        for (i, row) in counts.chunks(cols).enumerate() {
            graph.push(Edge::total(i, total_col, row.iter().sum(), false));
        }
        for j in 0..cols {
            let count = counts.iter().skip(j).step_by(cols).sum();
            graph.push(Edge::total(total_row, col(j), count, false));
        }
        graph.push(Edge::total(total_row, total_col, grand, true));
        graph
    }

    /// The end of edge `e` that is not `v`.
    fn other_end(&self, e: usize, v: usize) -> usize {
        let edge = &self.edges[e];
        debug_assert!(v == edge.left || v == edge.right);
        if v == edge.left {
            edge.right
        } else {
            edge.left
        }
    }

    /// Whether edge `e` may be walked away from vertex `from` in a return
    /// walk: it gains one that way, or its count is at least 2 (one to lose
    /// and the 1 an attacker knows every suppressed count keeps).
    fn walkable(&self, e: usize, from: usize) -> bool {
        let edge = &self.edges[e];
        (from == edge.left) == edge.gains_left_to_right || edge.count >= 2
    }
}

/// The search for a path found none: by the argument in the module docs this
/// cannot happen, and the caller fails closed if it does.
#[derive(Debug)]
struct NoPath;

/// Suppresses the numbers of a table given as its graph; the result is
/// indexed by edge id.
fn suppress(graph: &Graph, k: u64) -> Vec<bool> {
    let mut suppressed: Vec<bool> = graph
        .edges
        .iter()
        .map(|edge| is_small(edge.count, k))
        .collect();
    let closed =
        close_bridges(graph, &mut suppressed).and_then(|()| close_walks(graph, &mut suppressed));
    if closed.is_err() {
        debug_assert!(
            false,
            "every non-zero number has a return walk over non-zero numbers"
        );
        fail_closed(graph, &mut suppressed);
    }
    // Invariants: primary numbers are suppressed, zeros are not, and no
    // suppressed number is a bridge.
    debug_assert!(
        graph
            .edges
            .iter()
            .zip(&suppressed)
            .all(|(edge, &s)| s || !is_small(edge.count, k))
    );
    debug_assert!(
        graph
            .edges
            .iter()
            .zip(&suppressed)
            .all(|(edge, &s)| !s || edge.count > 0)
    );
    debug_assert!(bridges(graph, &suppressed).is_empty());
    suppressed
}

/// Step 2: while the suppressed subgraph has a bridge, closes a return walk
/// through the first one.
fn close_bridges(graph: &Graph, suppressed: &mut [bool]) -> Result<(), NoPath> {
    while let Some(&bridge) = bridges(graph, suppressed).first() {
        let path = cheapest_return(graph, suppressed, bridge).ok_or(NoPath)?;
        // A bridge lies on no cycle of suppressed edges, so the path has a
        // published edge and this round suppresses at least one more edge.
        if path.iter().all(|&e| suppressed[e]) {
            return Err(NoPath);
        }
        for e in path {
            suppressed[e] = true;
        }
    }
    Ok(())
}

/// Step 3: gives every suppressed edge a return walk over suppressed edges.
///
/// One pass is enough: every edge on a walk just closed has that walk, so
/// edges suppressed here need no visit of their own, and suppressing more
/// edges never takes a walk away.
fn close_walks(graph: &Graph, suppressed: &mut [bool]) -> Result<(), NoPath> {
    let mut has_walk = vec![false; graph.edges.len()];
    for e in 0..graph.edges.len() {
        if !suppressed[e] || has_walk[e] {
            continue;
        }
        let path = cheapest_return(graph, suppressed, e).ok_or(NoPath)?;
        has_walk[e] = true;
        for p in path {
            suppressed[p] = true;
            has_walk[p] = true;
        }
    }
    Ok(())
}

/// The fallback that the module docs show is never taken: suppress every
/// non-zero number, which leaves nothing to work out.
fn fail_closed(graph: &Graph, suppressed: &mut [bool]) {
    for (s, edge) in suppressed.iter_mut().zip(&graph.edges) {
        *s |= edge.count > 0;
    }
}

/// One vertex on the stack of the depth-first search for bridges.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The vertex.
    vertex: usize,
    /// The id of the tree edge the search arrived by (none at a root).
    via: Option<usize>,
    /// The index, in the vertex's incident list, of the next edge to try.
    next: usize,
}

/// The state of the low-link search for bridges.
#[derive(Debug)]
struct Lowlink {
    /// Each vertex's discovery time, or [`Lowlink::UNSEEN`].
    order: Vec<usize>,
    /// Each vertex's low-link: the earliest discovery time reachable from
    /// its subtree by one edge other than the tree edge into it.
    low: Vec<usize>,
    /// The next discovery time.
    clock: usize,
    /// The bridges found so far, by edge id.
    bridges: Vec<usize>,
}

impl Lowlink {
    /// The discovery time of a vertex not yet reached.
    const UNSEEN: usize = usize::MAX;

    /// Marks `v` as discovered now.
    fn discover(&mut self, v: usize) {
        self.order[v] = self.clock;
        self.low[v] = self.clock;
        self.clock += 1;
    }

    /// Searches the suppressed edges reachable from `root` (not yet seen),
    /// iteratively. The tree edge into a vertex is skipped by id, so a
    /// parallel edge to the parent counts as a second way back and the tree
    /// edge is not a bridge.
    fn search(&mut self, graph: &Graph, suppressed: &[bool], root: usize) {
        self.discover(root);
        let mut stack = vec![Frame {
            vertex: root,
            via: None,
            next: 0,
        }];
        while let Some(top) = stack.last_mut() {
            let (v, via, next) = (top.vertex, top.via, top.next);
            let Some(&e) = graph.incident[v].get(next) else {
                stack.pop();
                if let (Some(e), Some(parent)) = (via, stack.last()) {
                    self.finish(parent.vertex, v, e);
                }
                continue;
            };
            top.next += 1;
            if !suppressed[e] || via == Some(e) {
                continue;
            }
            let w = graph.other_end(e, v);
            if self.order[w] == Self::UNSEEN {
                self.discover(w);
                stack.push(Frame {
                    vertex: w,
                    via: Some(e),
                    next: 0,
                });
            } else {
                self.low[v] = self.low[v].min(self.order[w]);
            }
        }
    }

    /// Finishes `child`, reached from `parent` by tree edge `e`: the edge is
    /// a bridge iff nothing in `child`'s subtree reaches back to `parent` or
    /// above it.
    fn finish(&mut self, parent: usize, child: usize, e: usize) {
        self.low[parent] = self.low[parent].min(self.low[child]);
        if self.low[child] > self.order[parent] {
            self.bridges.push(e);
        }
    }
}

/// The bridges of the subgraph of suppressed edges, by edge id, ascending.
fn bridges(graph: &Graph, suppressed: &[bool]) -> Vec<usize> {
    let vertices = graph.incident.len();
    let mut search = Lowlink {
        order: vec![Lowlink::UNSEEN; vertices],
        low: vec![0; vertices],
        clock: 0,
        bridges: Vec::new(),
    };
    for root in 0..vertices {
        if search.order[root] == Lowlink::UNSEEN {
            search.search(graph, suppressed, root);
        }
    }
    search.bridges.sort_unstable();
    search.bridges
}

/// What suppressing the published edges of a path costs, compared in field
/// order: the counts withheld, then how many of them are totals, then how
/// many edges. Suppressed edges cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    /// The sum of the counts newly withheld (a `u128` cannot overflow).
    count: u128,
    /// How many of the newly withheld numbers are totals.
    totals: usize,
    /// How many numbers are newly withheld.
    edges: usize,
}

impl Cost {
    /// Nothing newly withheld.
    const ZERO: Cost = Cost {
        count: 0,
        totals: 0,
        edges: 0,
    };

    /// The cost of walking edge `e`.
    fn of(graph: &Graph, suppressed: &[bool], e: usize) -> Cost {
        if suppressed[e] {
            return Cost::ZERO;
        }
        let edge = &graph.edges[e];
        Cost {
            count: u128::from(edge.count),
            totals: usize::from(edge.total),
            edges: 1,
        }
    }

    /// The cost of two parts together.
    fn plus(self, other: Cost) -> Cost {
        Cost {
            count: self.count + other.count,
            totals: self.totals + other.totals,
            edges: self.edges + other.edges,
        }
    }
}

/// The cheapest path that, with edge `e`, makes a return walk: the edges of
/// the path, not counting `e`. It uses suppressed edges (at no cost) and
/// published non-zero edges. If it costs nothing, `e` already has a return
/// walk over suppressed edges.
fn cheapest_return(graph: &Graph, suppressed: &[bool], e: usize) -> Option<Vec<usize>> {
    let edge = &graph.edges[e];
    [(edge.left, edge.right), (edge.right, edge.left)]
        .into_iter()
        .filter(|&(from, _)| graph.walkable(e, from))
        .filter_map(|(from, to)| cheapest_path(graph, suppressed, e, to, from))
        .min_by_key(|&(cost, _)| cost)
        .map(|(_, path)| path)
}

/// Dijkstra's search for the cheapest walkable path from `from` to `to`
/// that avoids edge `skip`: its cost and its edges, from `to` back.
fn cheapest_path(
    graph: &Graph,
    suppressed: &[bool],
    skip: usize,
    from: usize,
    to: usize,
) -> Option<(Cost, Vec<usize>)> {
    let vertices = graph.incident.len();
    let mut best: Vec<Option<Cost>> = vec![None; vertices];
    let mut via: Vec<Option<usize>> = vec![None; vertices];
    best[from] = Some(Cost::ZERO);
    let mut queue = BinaryHeap::from([Reverse((Cost::ZERO, from))]);
    while let Some(Reverse((cost, v))) = queue.pop() {
        if v == to {
            break;
        }
        if best[v] != Some(cost) {
            continue; // a stale entry: `v` was reached more cheaply since
        }
        for &e in &graph.incident[v] {
            let usable = suppressed[e] || graph.edges[e].count > 0;
            if e == skip || !usable || !graph.walkable(e, v) {
                continue;
            }
            let w = graph.other_end(e, v);
            let through = cost.plus(Cost::of(graph, suppressed, e));
            if best[w].is_none_or(|known| through < known) {
                best[w] = Some(through);
                via[w] = Some(e);
                queue.push(Reverse((through, w)));
            }
        }
    }
    let cost = best[to]?;
    Some((cost, walk_back(graph, &via, from, to)))
}

/// The edges of the search tree's path from `to` back to `from`.
///
/// Each vertex's `via` edge leads to a vertex settled before it, so the walk
/// reaches `from` within as many steps as there are vertices.
fn walk_back(graph: &Graph, via: &[Option<usize>], from: usize, to: usize) -> Vec<usize> {
    let mut path = Vec::new();
    let mut at = to;
    while at != from && path.len() < via.len() {
        let Some(e) = via[at] else {
            break;
        };
        path.push(e);
        at = graph.other_end(e, at);
    }
    debug_assert_eq!(at, from, "the search tree leads back to the start");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64), so that the tests need
    /// no crate and fail the same way every time.
    struct XorShift(u64);

    impl XorShift {
        /// A generator from any seed (the state starts odd, so never zero,
        /// and xorshift never reaches zero from anything else).
        fn new(seed: u64) -> XorShift {
            XorShift((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
        }

        /// The next 64 random bits.
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A number in `0..n`.
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A count in `0..=max`, often zero and often 4 or less.
        fn count(&mut self, max: u64) -> u64 {
            match self.below(8) {
                0 | 1 => 0,
                2..=4 => 1 + self.below(max.min(4)),
                _ => self.below(max + 1),
            }
        }

        /// Whether a one-in-`n` event happened.
        fn one_in(&mut self, n: u64) -> bool {
            self.below(n) == 0
        }
    }

    /// A table to suppress: its shape and its cells.
    #[derive(Debug, Clone)]
    enum Shape {
        /// A one-way table's cells.
        OneWay(Vec<u64>),
        /// A two-way table's cells, row-major, with its rows and columns.
        TwoWay(Vec<u64>, usize, usize),
    }

    impl Shape {
        /// A random table: one-way with up to `max_cells` cells, or two-way
        /// with up to `max_side` rows and columns; counts up to `max`.
        fn random(rng: &mut XorShift, max_cells: u64, max_side: u64, max: u64) -> Shape {
            if rng.one_in(2) {
                let len = 1 + rng.below(max_cells) as usize;
                Shape::OneWay((0..len).map(|_| rng.count(max)).collect())
            } else {
                let rows = 1 + rng.below(max_side) as usize;
                let cols = 1 + rng.below(max_side) as usize;
                Shape::TwoWay(
                    (0..rows * cols).map(|_| rng.count(max)).collect(),
                    rows,
                    cols,
                )
            }
        }

        /// The table's graph.
        fn graph(&self) -> Graph {
            match self {
                Shape::OneWay(counts) => Graph::one_way(counts),
                Shape::TwoWay(counts, rows, cols) => Graph::two_way(counts, *rows, *cols),
            }
        }

        /// The suppression pattern the module computes, in edge order.
        fn suppress(&self, k: u64) -> Vec<bool> {
            let suppressed = match self {
                Shape::OneWay(counts) => suppress_one_way(counts, k),
                Shape::TwoWay(counts, rows, cols) => suppress_two_way(counts, *rows, *cols, k),
            };
            flatten(&suppressed)
        }

        /// The table as the attacker's equations see it.
        fn table(&self) -> Table {
            match self {
                Shape::OneWay(counts) => Table::one_way(counts),
                Shape::TwoWay(counts, rows, cols) => Table::two_way(counts, *rows, *cols),
            }
        }
    }

    /// A [`Suppressed`] as one list in edge order.
    fn flatten(suppressed: &Suppressed) -> Vec<bool> {
        let margins = suppressed.row_totals.iter().chain(&suppressed.col_totals);
        let all = suppressed.cells.iter().chain(margins).copied();
        all.chain([suppressed.grand_total]).collect()
    }

    /// A table written down the way an attacker would, without the graph:
    /// every number (cells, row totals, column totals, grand total, in that
    /// order) and the equations "a total is the sum of its parts".
    struct Table {
        /// The true numbers.
        values: Vec<u64>,
        /// Each equation: the total's index and its parts' indices.
        equations: Vec<(usize, Vec<usize>)>,
    }

    impl Table {
        /// A one-way table: `G = Σ c_i`.
        fn one_way(counts: &[u64]) -> Table {
            let mut values = counts.to_vec();
            values.push(counts.iter().sum());
            let equations = vec![(counts.len(), (0..counts.len()).collect())];
            Table { values, equations }
        }

        /// A two-way table: each row, each column, and `G` both ways.
        fn two_way(counts: &[u64], rows: usize, cols: usize) -> Table {
            let (row_total, col_total, grand) =
                (rows * cols, rows * cols + rows, rows * cols + rows + cols);
            let mut values = counts.to_vec();
            values.extend(counts.chunks(cols).map(|row| row.iter().sum::<u64>()));
            values.extend((0..cols).map(|j| counts.iter().skip(j).step_by(cols).sum::<u64>()));
            values.push(counts.iter().sum());
            let mut equations = Vec::new();
            for i in 0..rows {
                equations.push((row_total + i, (0..cols).map(|j| i * cols + j).collect()));
            }
            for j in 0..cols {
                equations.push((col_total + j, (0..rows).map(|i| i * cols + j).collect()));
            }
            equations.push((grand, (row_total..col_total).collect()));
            equations.push((grand, (col_total..grand).collect()));
            Table { values, equations }
        }

        /// The suppressed numbers whose value the attacker can work out: the
        /// ones with a single feasible value, given the published numbers,
        /// the equations, and that every suppressed number is at least
        /// `floor` (0: counts are not negative; 1: zeros are published).
        ///
        /// Suppressed numbers are searched up to `G + 1`, which matters only
        /// when `G` itself is suppressed. That can only hide solutions, so it
        /// never makes a number look safe; and the one-step moves of the
        /// module docs stay within it, so it hides none that matter.
        fn recoverable(&self, suppressed: &[bool], floor: i64) -> Vec<usize> {
            let cap = *self.values.last().unwrap_or(&0) as i64 + 1;
            let domains: Vec<(i64, i64)> = self
                .values
                .iter()
                .zip(suppressed)
                .map(|(&v, &s)| {
                    if s {
                        (floor, cap)
                    } else {
                        (v as i64, v as i64)
                    }
                })
                .collect();
            let other = |e: usize, range: (i64, i64)| {
                let mut d = domains.clone();
                d[e] = range;
                self.feasible(d)
            };
            (0..self.values.len())
                .filter(|&e| suppressed[e])
                .filter(|&e| {
                    let t = self.values[e] as i64;
                    !other(e, (floor, t - 1)) && !other(e, (t + 1, cap))
                })
                .collect()
        }

        /// Whether some integer assignment within `domains` satisfies every
        /// equation: an exhaustive search, halving the narrowest open
        /// domain, with bounds propagated through the equations at each step
        /// (which bounds a cell by its lines' totals, or by the grand total
        /// when they are suppressed, and fixes a line's last unknown).
        fn feasible(&self, mut domains: Vec<(i64, i64)>) -> bool {
            if !self.propagate(&mut domains) {
                return false;
            }
            let open = (0..domains.len()).filter(|&v| domains[v].0 < domains[v].1);
            let Some(v) = open.min_by_key(|&v| domains[v].1 - domains[v].0) else {
                return true; // all fixed, and propagation checked every equation
            };
            let (lo, hi) = domains[v];
            let mid = lo + (hi - lo) / 2;
            let mut lower = domains.clone();
            lower[v].1 = mid;
            domains[v].0 = mid + 1;
            self.feasible(lower) || self.feasible(domains)
        }

        /// Narrows the domains until the equations narrow them no further;
        /// false if some domain becomes empty.
        fn propagate(&self, domains: &mut [(i64, i64)]) -> bool {
            let mut changed = true;
            while changed {
                changed = false;
                if domains.iter().any(|&(lo, hi)| lo > hi) {
                    return false;
                }
                for (total, parts) in &self.equations {
                    let lo: i64 = parts.iter().map(|&p| domains[p].0).sum();
                    let hi: i64 = parts.iter().map(|&p| domains[p].1).sum();
                    changed |= narrow(&mut domains[*total], lo, hi);
                    let (total_lo, total_hi) = domains[*total];
                    for &p in parts {
                        let (p_lo, p_hi) = domains[p];
                        changed |= narrow(
                            &mut domains[p],
                            total_lo - (hi - p_hi),
                            total_hi - (lo - p_lo),
                        );
                    }
                }
            }
            true
        }
    }

    /// Narrows a domain to `lo..=hi`; whether it changed.
    fn narrow(domain: &mut (i64, i64), lo: i64, hi: i64) -> bool {
        let narrowed = (domain.0.max(lo), domain.1.min(hi));
        let changed = narrowed != *domain;
        *domain = narrowed;
        changed
    }

    /// Checks a computed pattern: primary numbers suppressed, zeros not, and
    /// nothing recoverable by either attacker.
    fn assert_safe(shape: &Shape, k: u64) {
        let suppressed = shape.suppress(k);
        let table = shape.table();
        for (&value, &s) in table.values.iter().zip(&suppressed) {
            assert!(
                s || !is_small(value, k),
                "{shape:?} k={k}: a small number is published"
            );
            assert!(!s || value > 0, "{shape:?} k={k}: a zero is suppressed");
        }
        assert_eq!(
            table.recoverable(&suppressed, 0),
            Vec::<usize>::new(),
            "{shape:?} k={k}"
        );
        assert_eq!(
            table.recoverable(&suppressed, 1),
            Vec::<usize>::new(),
            "{shape:?} k={k}"
        );
    }

    /// The edges that have no return walk over suppressed edges.
    fn without_walk(graph: &Graph, suppressed: &[bool]) -> Vec<usize> {
        let has_walk = |e: usize| {
            cheapest_return(graph, suppressed, e)
                .is_some_and(|path| path.iter().all(|&p| suppressed[p]))
        };
        (0..suppressed.len())
            .filter(|&e| suppressed[e] && !has_walk(e))
            .collect()
    }

    /// One bool per edge, true at the given ids.
    fn pattern(len: usize, ids: &[usize]) -> Vec<bool> {
        (0..len).map(|e| ids.contains(&e)).collect()
    }

    #[test]
    fn one_small_cell_gets_the_smallest_other_cell_as_its_only_complement() {
        let suppressed = suppress_one_way(&[2, 7, 5, 9], 3);
        assert_eq!(suppressed.cells, [true, false, true, false]);
        assert!(!suppressed.grand_total);
        assert!(suppressed.row_totals.is_empty() && suppressed.col_totals.is_empty());
    }

    #[test]
    fn tables_without_small_numbers_suppress_nothing() {
        let one = suppress_one_way(&[3, 4, 0, 5], 3);
        assert_eq!(one.cells, [false; 4]);
        assert!(!one.grand_total);
        let two = suppress_two_way(&[3, 0, 4, 5, 6, 0], 2, 3, 3);
        assert_eq!(two.cells, [false; 6]);
        assert_eq!(
            (two.row_totals, two.col_totals),
            (vec![false; 2], vec![false; 3])
        );
        assert!(!two.grand_total);
    }

    #[test]
    fn k_of_one_suppresses_nothing() {
        let two = suppress_two_way(&[1, 0, 2, 1], 2, 2, 1);
        assert_eq!(flatten(&two), [false; 9]);
        assert_eq!(flatten(&suppress_one_way(&[1, 1, 0], 1)), [false; 4]);
    }

    #[test]
    fn a_small_two_way_cell_gets_complements_in_its_row_and_its_column() {
        #[rustfmt::skip]
        let counts = [
            2, 8, 9,
            7, 6, 10,
            9, 12, 5,
        ];
        let suppressed = suppress_two_way(&counts, 3, 3, 3);
        // The cheapest rectangle through c00: c01 (its row), c10 (its
        // column) and c11, withholding 8 + 7 + 6.
        #[rustfmt::skip]
        let cells = [
            true, true, false,
            true, true, false,
            false, false, false,
        ];
        assert_eq!(suppressed.cells, cells);
        assert_eq!(
            (suppressed.row_totals, suppressed.col_totals),
            (vec![false; 3], vec![false; 3])
        );
        assert!(!suppressed.grand_total);
    }

    #[test]
    fn primary_suppression_alone_gives_the_cell_away() {
        let shape = Shape::OneWay(vec![2, 7, 5, 9]);
        let primary = pattern(5, &[0]);
        assert_eq!(shape.table().recoverable(&primary, 0), [0]);
        assert_safe(&shape, 3);

        let shape = Shape::TwoWay(vec![2, 8, 9, 7, 6, 10, 9, 12, 5], 3, 3);
        let primary = pattern(16, &[0]);
        assert_eq!(shape.table().recoverable(&primary, 0), [0]);
        assert_eq!(bridges(&shape.graph(), &primary), [0]);
        assert_safe(&shape, 3);
    }

    #[test]
    fn a_bridgeless_pattern_falls_to_an_attacker_who_knows_zeros_are_published() {
        let shape = Shape::OneWay(vec![1, 1, 10]);
        let both_ones = pattern(4, &[0, 1]);
        assert!(bridges(&shape.graph(), &both_ones).is_empty());
        assert!(shape.table().recoverable(&both_ones, 0).is_empty());
        assert_eq!(shape.table().recoverable(&both_ones, 1), [0, 1]);
        assert_eq!(shape.suppress(3), [true, true, true, false]);
        assert_safe(&shape, 3);
    }

    #[test]
    fn bridges_tell_parallel_edges_apart_by_id() {
        let one = Graph::one_way(&[2, 3, 4]);
        assert_eq!(bridges(&one, &pattern(4, &[0])), [0]);
        assert!(bridges(&one, &pattern(4, &[0, 3])).is_empty());
        assert!(bridges(&one, &pattern(4, &[1, 2])).is_empty());
        // A 2x2 table: edges 0..4 cells, 4..6 row totals, 6..8 column
        // totals, 8 the grand total.
        let two = Graph::two_way(&[1, 2, 3, 4], 2, 2);
        assert_eq!(bridges(&two, &pattern(9, &[0, 1])), [0, 1]);
        assert!(bridges(&two, &pattern(9, &[0, 1, 2, 3])).is_empty());
        assert!(bridges(&two, &pattern(9, &[0, 4, 6, 8])).is_empty());
        assert_eq!(bridges(&two, &pattern(9, &[0, 1, 2, 3, 5])), [5]);
    }

    #[test]
    fn all_zero_tables_suppress_nothing() {
        assert_eq!(flatten(&suppress_one_way(&[0, 0, 0], 5)), [false; 4]);
        assert_eq!(flatten(&suppress_one_way(&[0], 5)), [false; 2]);
        assert_eq!(flatten(&suppress_two_way(&[0; 6], 2, 3, 5)), [false; 12]);
    }

    #[test]
    fn a_single_cell_is_suppressed_with_its_totals_when_small() {
        assert_eq!(flatten(&suppress_one_way(&[2], 3)), [true, true]);
        assert_eq!(flatten(&suppress_one_way(&[3], 3)), [false, false]);
        assert_eq!(flatten(&suppress_two_way(&[2], 1, 1, 3)), [true; 4]);
        assert_eq!(flatten(&suppress_two_way(&[4], 1, 1, 3)), [false; 4]);
        assert_safe(&Shape::TwoWay(vec![2], 1, 1), 3);
    }

    #[test]
    fn a_grand_total_below_k_suppresses_every_non_zero_number() {
        assert_eq!(
            flatten(&suppress_one_way(&[1, 0, 2], 5)),
            [true, false, true, true]
        );
        let two = suppress_two_way(&[1, 0, 0, 2], 2, 2, 5);
        assert_eq!(two.cells, [true, false, false, true]);
        assert_eq!(
            (two.row_totals, two.col_totals),
            (vec![true; 2], vec![true; 2])
        );
        assert!(two.grand_total);
        assert_safe(&Shape::TwoWay(vec![1, 0, 0, 2], 2, 2), 5);
    }

    #[test]
    fn no_suppressed_number_can_be_worked_out_in_random_tables() {
        let mut rng = XorShift::new(0x5eed_0001);
        for round in 0..1000 {
            let k = if round % 2 == 0 { 3 } else { 5 };
            assert_safe(&Shape::random(&mut rng, 6, 4, 15), k);
        }
    }

    #[test]
    fn bridges_and_return_walks_are_exactly_what_the_attacker_recovers() {
        let mut rng = XorShift::new(0x5eed_0002);
        for round in 0..2000 {
            let max = if round % 2 == 0 { 3 } else { 15 };
            let shape = Shape::random(&mut rng, 6, 4, max);
            let (graph, table) = (shape.graph(), shape.table());
            let suppressed: Vec<bool> = table
                .values
                .iter()
                .map(|&v| v > 0 && !rng.one_in(3))
                .collect();
            assert_eq!(
                table.recoverable(&suppressed, 0),
                bridges(&graph, &suppressed),
                "{shape:?}"
            );
            assert_eq!(
                table.recoverable(&suppressed, 1),
                without_walk(&graph, &suppressed),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn every_non_zero_number_has_a_return_walk_over_non_zero_numbers() {
        let mut rng = XorShift::new(0x5eed_0003);
        for _ in 0..300 {
            let shape = Shape::random(&mut rng, 12, 7, 15);
            let graph = shape.graph();
            let nothing = vec![false; graph.edges.len()];
            for (e, edge) in graph
                .edges
                .iter()
                .enumerate()
                .filter(|(_, edge)| edge.count > 0)
            {
                let path = cheapest_return(&graph, &nothing, e);
                assert!(
                    path.is_some(),
                    "{shape:?}: edge {e} ({edge:?}) has no return walk"
                );
            }
        }
    }

    #[test]
    fn large_tables_end_with_every_suppressed_number_on_a_return_walk() {
        let mut rng = XorShift::new(0x5eed_0004);
        for (rows, cols) in [(30, 30), (1, 200), (200, 2)] {
            let counts: Vec<u64> = (0..rows * cols).map(|_| rng.count(15)).collect();
            let shape = Shape::TwoWay(counts, rows, cols);
            let (graph, suppressed) = (shape.graph(), shape.suppress(5));
            assert!(bridges(&graph, &suppressed).is_empty());
            assert!(without_walk(&graph, &suppressed).is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "k must be at least 1")]
    fn k_of_zero_is_refused() {
        suppress_one_way(&[1, 2], 0);
    }

    #[test]
    #[should_panic(expected = "rows * cols")]
    fn a_two_way_table_of_the_wrong_size_is_refused() {
        suppress_two_way(&[1, 2, 3], 2, 2, 3);
    }

    #[test]
    #[should_panic(expected = "at least one cell")]
    fn an_empty_one_way_table_is_refused() {
        suppress_one_way(&[], 3);
    }

    #[test]
    #[should_panic(expected = "at most u64::MAX")]
    fn counts_that_overflow_are_refused() {
        suppress_one_way(&[u64::MAX, 1], 3);
    }
}
