//! libseccomp's per-syscall rule tree, modelled node for node.
//!
//! runc hands each rule to libseccomp (2.5.4 in the distributions husk replaces runc on), which
//! keeps, per architecture and syscall, a tree of 32-bit comparison nodes (`db.c`:
//! `db_rule_add`, `_db_tree_prune`, `_db_tree_add`). Rules whose conditions overlap with
//! different actions are merged into that tree by its shape: nodes that compare the same word
//! with the same operator and value are one node, a level's nodes are kept in libseccomp's sort
//! order, sub-trees are shared between parents, and some combinations are refused (EEXIST,
//! which runc reports as an error). The filter then decides a call by walking the tree: a
//! level's nodes are tried in order, a branch without an action falls through to the next node
//! of the level, and then to the level above; nothing reached gives the default action.
//!
//! This module replays the same operations on the same structure (an arena of nodes with
//! libseccomp's reference counts, so that merging, pruning and freeing happen exactly as there)
//! and turns the resulting tree into a DAG of comparison blocks for the BPF generator. Where
//! libseccomp's insertion never terminates (a level linked into a cycle), the replay sees its
//! walk come round and the profile is refused, as runc would never start the container; a step
//! budget bounds the (exponential) worst case of merging.

use std::collections::HashMap;

const NIL: u32 = u32::MAX;

/// The comparison a node makes on one 32-bit word: `(word & mask) <op> datum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum WordOp {
    Eq,
    Gt,
    Ge,
    MaskedEq,
}

/// The operator of a profile condition (libseccomp's `enum scmp_compare`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

impl ApiOp {
    /// `__db_chain_op_priority`.
    fn priority(self) -> u32 {
        match self {
            ApiOp::MaskedEq | ApiOp::Eq | ApiOp::Ne => 3,
            ApiOp::Le | ApiOp::Lt => 2,
            ApiOp::Ge | ApiOp::Gt => 1,
        }
    }
}

/// One condition of a rule as libseccomp receives it (mask all ones except for MASKED_EQ;
/// `datum` not yet masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ApiArg {
    pub index: u32,
    pub op: ApiOp,
    pub mask: u64,
    pub datum: u64,
}

#[derive(Clone, Debug)]
struct Node {
    arg: u32,
    hi: bool,
    op: WordOp,
    op_orig: ApiOp,
    mask: u32,
    datum: u32,
    datum_full: u64,
    act_t_flg: bool,
    act_f_flg: bool,
    act_t: u32,
    act_f: u32,
    lvl_prv: u32,
    lvl_nxt: u32,
    nxt_t: u32,
    nxt_f: u32,
    refcnt: u32,
}

/// Why a rule could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    /// libseccomp's -EEXIST: the rule's conditions meet existing ones with another action.
    Exists,
    /// libseccomp does not return: its insertion walks a level linked into a cycle.
    Loops,
    /// The replay ran out of its step budget (exponential merging).
    TooLong,
}

// struct db_iter_state flags
const IST_MATCH: u32 = 0x1;
const IST_MATCH_ONCE: u32 = 0x2;
const IST_X_FINISHED: u32 = 0x10;
const IST_N_FINISHED: u32 = 0x20;
const IST_X_PREFIX: u32 = 0x100;
const IST_N_PREFIX: u32 = 0x200;
const IST_M_MATCHSET: u32 = IST_MATCH | IST_MATCH_ONCE;
const IST_M_REDUNDANT: u32 = IST_MATCH | IST_X_FINISHED | IST_N_PREFIX;

#[derive(Clone, Copy)]
struct IterState {
    flags: u32,
    action: u32,
}

/// Where a tree pointer lives (`struct db_arg_chain_tree **`).
#[derive(Clone, Copy)]
enum Slot {
    Chains,
    T(u32),
    F(u32),
}

/// Steps (loop turns and calls) adding one rule may take before the replay gives up. Merging
/// is exponential in the worst case (pruning walks every path of the new chain against whole
/// levels: 2.6 million steps for four rules of three ordered conditions on one syscall), so the
/// bound is generous; it stops only profiles libseccomp would need seconds for as well.
const BUDGET: u64 = 100_000_000;
/// Nesting of the recursive walks (a sane tree is at most 6 arguments x 3 nodes deep).
const MAX_DEPTH: u32 = 400;

/// One syscall's entry in one architecture's filter (`struct db_sys_list`).
pub(crate) struct SysTree {
    nodes: Vec<Node>,
    chains: u32,
    /// The action when there are no chains (an unconditional rule).
    action: u32,
    exists: bool,
    steps: u64,
    depth: u32,
    /// The budget ran out, or a cycle was found: everything unwinds.
    looped: bool,
    /// A walk along a level came round again: libseccomp would never stop.
    cycle: bool,
}

impl SysTree {
    pub(crate) fn new() -> SysTree {
        SysTree {
            nodes: Vec::new(),
            chains: NIL,
            action: 0,
            exists: false,
            steps: 0,
            depth: 0,
            looped: false,
            cycle: false,
        }
    }

    /// Count a step; false once the budget is spent (the caller unwinds).
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps > BUDGET || self.depth > MAX_DEPTH {
            self.looped = true;
        }
        !self.looped
    }

    /// One turn of a walk along a level (`k` counts them): a walk longer than the nodes can
    /// make (each is passed at most once per reference it holds) has come round a cycle.
    fn spin(&mut self, k: &mut usize) -> bool {
        *k += 1;
        if *k > 4 * self.nodes.len() + 4 {
            self.cycle = true;
            self.looped = true;
        }
        self.step()
    }

    fn err(&self) -> AddError {
        if self.cycle {
            AddError::Loops
        } else {
            AddError::TooLong
        }
    }

    fn n(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }
    fn m(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    fn slot(&self, s: Slot) -> u32 {
        match s {
            Slot::Chains => self.chains,
            Slot::T(x) => self.n(x).nxt_t,
            Slot::F(x) => self.n(x).nxt_f,
        }
    }
    fn set_slot(&mut self, s: Slot, v: u32) {
        match s {
            Slot::Chains => self.chains = v,
            Slot::T(x) => self.m(x).nxt_t = v,
            Slot::F(x) => self.m(x).nxt_f = v,
        }
    }

    fn get(&mut self, i: u32) -> u32 {
        if i != NIL {
            let n = self.m(i);
            n.refcnt = n.refcnt.wrapping_add(1);
        }
        i
    }

    fn level_start(&mut self, mut i: u32) -> u32 {
        let mut k = 0;
        while self.n(i).lvl_prv != NIL && self.spin(&mut k) {
            i = self.n(i).lvl_prv;
        }
        i
    }

    fn arg_priority(n: &Node) -> u32 {
        (n.arg << 1) + u32::from(n.hi)
    }

    /// `_db_chain_lt`.
    fn chain_lt(&self, a: u32, b: u32) -> bool {
        let (a, b) = (self.n(a), self.n(b));
        let (pa, pb) = (Self::arg_priority(a), Self::arg_priority(b));
        if pa != pb {
            return pa < pb;
        }
        let (oa, ob) = (a.op_orig.priority(), b.op_orig.priority());
        if oa != ob {
            return oa < ob;
        }
        match a.op_orig {
            ApiOp::Le | ApiOp::Lt => a.datum > b.datum,
            _ => a.datum < b.datum,
        }
    }

    /// `_db_chain_eq`.
    fn chain_eq(&self, a: u32, b: u32) -> bool {
        let (a, b) = (self.n(a), self.n(b));
        Self::arg_priority(a) == Self::arg_priority(b)
            && a.op == b.op
            && a.datum == b.datum
            && a.mask == b.mask
    }

    fn leaf(&self, i: u32) -> bool {
        let n = self.n(i);
        n.nxt_t == NIL && n.nxt_f == NIL
    }

    fn zombie(&self, i: u32) -> bool {
        let n = self.n(i);
        self.leaf(i) && !n.act_t_flg && !n.act_f_flg
    }

    /// `_db_level_clean`.
    fn level_clean(&mut self, node: u32) -> u32 {
        let start = self.level_start(node);
        let mut n = start;
        let mut k = 0;
        while n != NIL && self.spin(&mut k) {
            let x = self.n(n);
            let links = u32::from(x.lvl_prv != NIL) + u32::from(x.lvl_nxt != NIL);
            if x.refcnt > links {
                return 0;
            }
            n = x.lvl_nxt;
        }
        let mut cnt = 0;
        n = start;
        k = 0;
        while n != NIL && self.spin(&mut k) {
            cnt += self.node_put(&mut n);
        }
        cnt
    }

    /// `_db_tree_put`.
    fn tree_put(&mut self, tree: &mut u32) -> u32 {
        let mut cnt = self.node_put(tree);
        if *tree != NIL {
            cnt += self.level_clean(*tree);
        }
        cnt
    }

    /// `_db_node_put`: drop a reference; the last one frees the node and its sub-trees.
    fn node_put(&mut self, node: &mut u32) -> u32 {
        let i = *node;
        if i == NIL || !self.step() {
            return 0;
        }
        let mut cnt = 0;
        let r = self.n(i).refcnt.wrapping_sub(1);
        self.m(i).refcnt = r;
        if r == 0 {
            self.depth += 1;
            let Node {
                lvl_prv,
                lvl_nxt,
                nxt_t,
                nxt_f,
                ..
            } = *self.n(i);
            let (mut lp, mut ln) = (lvl_prv, lvl_nxt);
            if lp != NIL {
                self.m(lp).lvl_nxt = NIL;
            }
            if ln != NIL {
                self.m(ln).lvl_prv = NIL;
            }
            if lp != NIL {
                cnt += self.node_put(&mut lp);
            }
            if ln != NIL {
                cnt += self.node_put(&mut ln);
            }
            if lp != NIL {
                let g = self.get(ln);
                self.m(lp).lvl_nxt = g;
            }
            if ln != NIL {
                let g = self.get(lp);
                self.m(ln).lvl_prv = g;
            }
            *node = if lp != NIL { lp } else { ln };
            let (mut t, mut f) = (nxt_t, nxt_f);
            cnt += self.tree_put(&mut t);
            cnt += self.tree_put(&mut f);
            cnt += 1;
            self.depth -= 1;
        }
        cnt
    }

    /// `_db_tree_remove`: remove `node` (and its sub-trees) from the tree at `tree`.
    fn tree_remove(&mut self, tree: Slot, node: u32) -> u32 {
        let top = self.slot(tree);
        if top == NIL || node == NIL || !self.step() {
            return 0;
        }
        self.depth += 1;
        let mut cnt = 0;
        let mut c = self.level_start(top);
        let mut found = false;
        let mut k = 0;
        loop {
            if c == node {
                found = true;
                break;
            }
            cnt += self.tree_remove(Slot::T(c), node);
            cnt += self.tree_remove(Slot::F(c), node);
            if self.zombie(c) {
                found = true;
                break;
            }
            c = self.n(c).lvl_nxt;
            if c == NIL || cnt != 0 || !self.spin(&mut k) {
                break;
            }
        }
        if found {
            if c == self.slot(tree) {
                let x = self.n(c);
                let v = if x.lvl_prv != NIL {
                    x.lvl_prv
                } else {
                    x.lvl_nxt
                };
                self.set_slot(tree, v);
            }
            let Node {
                lvl_prv, lvl_nxt, ..
            } = *self.n(c);
            if lvl_prv != NIL {
                self.m(lvl_prv).lvl_nxt = lvl_nxt;
            }
            if lvl_nxt != NIL {
                self.m(lvl_nxt).lvl_prv = lvl_prv;
            }
            self.m(c).lvl_prv = NIL;
            self.m(c).lvl_nxt = NIL;
            cnt += self.node_put(&mut c);
        }
        self.depth -= 1;
        cnt
    }

    /// `_db_tree_act_check`: every action in the tree (from the start of its level) is `act`.
    fn act_check(&mut self, tree: u32, act: u32) -> bool {
        if tree == NIL || !self.step() {
            return true;
        }
        self.depth += 1;
        let mut c = self.level_start(tree);
        let mut ok = true;
        let mut k = 0;
        while c != NIL && self.spin(&mut k) {
            let x = self.n(c);
            let (t, f) = (x.nxt_t, x.nxt_f);
            if (x.act_t_flg && x.act_t != act)
                || (x.act_f_flg && x.act_f != act)
                || !self.act_check(t, act)
                || !self.act_check(f, act)
            {
                ok = false;
                break;
            }
            c = self.n(c).lvl_nxt;
        }
        self.depth -= 1;
        ok
    }

    /// `_db_tree_prune`: drop the parts of the existing tree the new one makes redundant.
    fn prune(&mut self, existing: u32, new: u32, state: &mut IterState) -> u32 {
        let mut cnt = 0;
        let mut state_new = *state;
        let mut x = existing;
        let n = new;
        self.depth += 1;
        'ret: {
            if n == NIL || x == NIL || !self.step() {
                break 'ret;
            }
            if state.flags & IST_M_MATCHSET == IST_MATCH_ONCE {
                break 'ret;
            }
            x = self.level_start(x);
            let mut k = 0;
            loop {
                let x_next = self.n(x).lvl_nxt;
                'next: {
                    if self.chain_eq(x, n) {
                        state_new.flags |= IST_M_MATCHSET;
                        if self.leaf(n) {
                            state_new.flags |= IST_N_FINISHED;
                        }
                        if self.leaf(x) {
                            state_new.flags |= IST_X_FINISHED;
                        }
                        let (xn, nn) = (self.n(x).clone(), self.n(n).clone());
                        if (xn.act_t_flg || xn.nxt_t != NIL) && !(nn.act_t_flg || nn.nxt_t != NIL) {
                            break 'ret;
                        }
                        if (xn.act_f_flg || xn.nxt_f != NIL) && !(nn.act_f_flg || nn.nxt_f != NIL) {
                            break 'ret;
                        }
                        if state_new.flags & IST_N_FINISHED != 0
                            && state_new.flags & IST_X_FINISHED != 0
                            && (nn.act_t_flg != xn.act_t_flg
                                || nn.act_t != xn.act_t
                                || nn.act_f_flg != xn.act_f_flg
                                || nn.act_f != xn.act_f)
                        {
                            break 'ret;
                        }
                        for t in [true, false] {
                            let nsub = if t { self.n(n).nxt_t } else { self.n(n).nxt_f };
                            if nsub == NIL {
                                continue;
                            }
                            self.get(x);
                            let mut sn = *state;
                            sn.flags |= IST_M_MATCHSET;
                            let xsub = if t { self.n(x).nxt_t } else { self.n(x).nxt_f };
                            cnt += self.prune(xsub, nsub, &mut sn);
                            cnt += self.node_put(&mut x);
                            if sn.flags & IST_MATCH != 0 {
                                state_new.flags |= sn.flags;
                            }
                            if x == NIL {
                                break 'next;
                            }
                        }
                        let matched = state_new.flags & IST_MATCH != 0;
                        if self.act_check(x, state_new.action)
                            && matched
                            && state_new.flags & IST_N_FINISHED != 0
                            && state_new.flags & IST_X_PREFIX != 0
                        {
                            // the new tree is "shorter"
                            cnt += self.tree_remove(Slot::Chains, x);
                            if self.chains == NIL {
                                break 'ret;
                            }
                        } else if self.act_check(x, state_new.action)
                            && matched
                            && state_new.flags & IST_X_FINISHED != 0
                            && state_new.flags & IST_N_PREFIX != 0
                        {
                            // the new tree is "longer"
                            break 'ret;
                        }
                    } else {
                        // the lesser chain's tree goes down a level, the other stays: the
                        // existing tree (x) is then a prefix, else the new one (n); either
                        // bails when the other is a prefix already
                        let x_lt = self.chain_lt(x, n);
                        let (bail, prefix) = if x_lt {
                            (IST_N_PREFIX, IST_X_PREFIX)
                        } else {
                            (IST_X_PREFIX, IST_N_PREFIX)
                        };
                        if state.flags & bail != 0 {
                            break 'ret;
                        }
                        for t in [true, false] {
                            let down = if x_lt { x } else { n };
                            let sub = if t {
                                self.n(down).nxt_t
                            } else {
                                self.n(down).nxt_f
                            };
                            if sub == NIL {
                                continue;
                            }
                            self.get(x);
                            let mut sn = *state;
                            sn.flags &= !IST_MATCH;
                            sn.flags |= prefix;
                            cnt += if x_lt {
                                self.prune(sub, n, &mut sn)
                            } else {
                                self.prune(x, sub, &mut sn)
                            };
                            cnt += self.node_put(&mut x);
                            if sn.flags & IST_MATCH != 0 {
                                state_new.flags |= sn.flags;
                                break 'ret;
                            }
                            if x == NIL {
                                break 'next;
                            }
                        }
                    }
                }
                x = x_next;
                if x == NIL || !self.spin(&mut k) {
                    break;
                }
            }
            state_new.flags &= !IST_MATCH;
        }
        if state_new.flags & IST_MATCH != 0 {
            state.flags |= state_new.flags;
        } else {
            state.flags &= !IST_MATCH;
        }
        self.depth -= 1;
        cnt
    }

    /// `_db_tree_add`: merge the new tree into the existing one at `existing`.
    fn tree_add(&mut self, existing: Slot, new: u32) -> Result<(), AddError> {
        let mut x = self.slot(existing);
        let n = new;
        self.depth += 1;
        let mut k = 0;
        let r = loop {
            if !self.spin(&mut k) {
                break Err(self.err());
            }
            if self.chain_eq(x, n) {
                break self.tree_add_eq(x, n);
            } else if !self.chain_lt(x, n) {
                let nx = self.n(x).lvl_nxt;
                if nx == NIL {
                    // add to the end of this level
                    let g = self.get(x);
                    self.m(n).lvl_prv = g;
                    let g = self.get(n);
                    self.m(x).lvl_nxt = g;
                    break Ok(());
                }
                x = nx;
            } else {
                // add before the existing node on this level
                let p = self.n(x).lvl_prv;
                if p != NIL {
                    let g = self.get(n);
                    self.m(p).lvl_nxt = g;
                    self.m(n).lvl_prv = p;
                    let g = self.get(n);
                    self.m(x).lvl_prv = g;
                    self.m(n).lvl_nxt = x;
                } else {
                    let g = self.get(n);
                    self.m(x).lvl_prv = g;
                    let g = self.get(x);
                    self.m(n).lvl_nxt = g;
                }
                if self.slot(existing) == x {
                    let g = self.get(n);
                    self.set_slot(existing, g);
                    self.node_put(&mut x);
                }
                break Ok(());
            }
        };
        self.depth -= 1;
        if self.looped {
            return Err(self.err());
        }
        r
    }

    fn tree_add_eq(&mut self, x: u32, n: u32) -> Result<(), AddError> {
        for t in [true, false] {
            let nn = self.n(n).clone();
            let (n_flg, n_act) = if t {
                (nn.act_t_flg, nn.act_t)
            } else {
                (nn.act_f_flg, nn.act_f)
            };
            if !n_flg {
                continue;
            }
            let xn = self.n(x).clone();
            let (x_flg, x_act, x_sub) = if t {
                (xn.act_t_flg, xn.act_t, xn.nxt_t)
            } else {
                (xn.act_f_flg, xn.act_f, xn.nxt_f)
            };
            if !x_flg {
                if !self.act_check(x_sub, n_act) {
                    return Err(AddError::Exists);
                }
                let mut s = x_sub;
                self.node_put(&mut s);
                let m = self.m(x);
                if t {
                    m.nxt_t = NIL;
                    m.act_t = n_act;
                    m.act_t_flg = true;
                } else {
                    m.nxt_f = NIL;
                    m.act_f = n_act;
                    m.act_f_flg = true;
                }
            } else if n_act != x_act {
                // libseccomp adjusts the true action by the full 64-bit value (in both
                // branches: the false branch writes act_t too).
                let bigger = if t {
                    nn.datum_full > xn.datum_full
                } else {
                    nn.datum_full < xn.datum_full
                };
                if nn.hi && bigger {
                    self.m(x).act_t = nn.act_t;
                }
                if self.leaf(x) || self.leaf(n) {
                    return Err(AddError::Exists);
                }
            }
        }
        for t in [true, false] {
            let nsub = if t { self.n(n).nxt_t } else { self.n(n).nxt_f };
            if nsub == NIL {
                continue;
            }
            let xn = self.n(x);
            let (x_sub, x_flg) = if t {
                (xn.nxt_t, xn.act_t_flg)
            } else {
                (xn.nxt_f, xn.act_f_flg)
            };
            if x_sub != NIL {
                self.tree_add(if t { Slot::T(x) } else { Slot::F(x) }, nsub)?;
            } else if !x_flg {
                let g = self.get(nsub);
                if t {
                    self.m(x).nxt_t = g;
                } else {
                    self.m(x).nxt_f = g;
                }
            } else {
                // the existing tree is "shorter"
                return Ok(());
            }
        }
        Ok(())
    }

    fn new_node(&mut self, n: Node) -> u32 {
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }

    /// `_db_rule_gen`: the chain of one rule; returns its head (NIL when it has no
    /// conditions).
    fn rule_gen(&mut self, args: &[ApiArg], action: u32, wide: bool) -> u32 {
        let blank = Node {
            arg: 0,
            hi: false,
            op: WordOp::Eq,
            op_orig: ApiOp::Eq,
            mask: 0,
            datum: 0,
            datum_full: 0,
            act_t_flg: false,
            act_f_flg: false,
            act_t: 0,
            act_f: 0,
            lvl_prv: NIL,
            lvl_nxt: NIL,
            nxt_t: NIL,
            nxt_f: NIL,
            refcnt: 0,
        };
        let mut head = NIL;
        let mut prev: Vec<u32> = Vec::new();
        let mut tf = false;
        let mut by_index: [Option<ApiArg>; 6] = [None; 6];
        for a in args {
            if let Some(s) = by_index.get_mut(a.index as usize) {
                s.get_or_insert(*a);
            }
        }
        for a in by_index.iter().flatten() {
            let (mhi, mlo) = ((a.mask >> 32) as u32, a.mask as u32);
            let (dhi, dlo) = ((a.datum >> 32) as u32, a.datum as u32);
            let link = |me: &mut SysTree, prev: &[u32], tf: bool, to: u32| {
                for &p in prev {
                    let g = me.get(to);
                    if tf {
                        me.m(p).nxt_t = g;
                    } else {
                        me.m(p).nxt_f = g;
                    }
                }
            };
            if wide {
                if a.op == ApiOp::MaskedEq && mhi == 0 && mlo == 0 {
                    continue;
                }
                let hi = Node {
                    arg: a.index,
                    hi: true,
                    op_orig: a.op,
                    mask: mhi,
                    datum: dhi & mhi,
                    datum_full: a.datum,
                    ..blank.clone()
                };
                let lo = Node {
                    hi: false,
                    mask: mlo,
                    datum: dlo & mlo,
                    ..hi.clone()
                };
                match a.op {
                    ApiOp::Gt | ApiOp::Ge | ApiOp::Le | ApiOp::Lt => {
                        let c0 = self.new_node(Node {
                            op: WordOp::Gt,
                            ..hi.clone()
                        });
                        let c1 = self.new_node(Node {
                            op: WordOp::Eq,
                            ..hi
                        });
                        let lop = if matches!(a.op, ApiOp::Gt | ApiOp::Le) {
                            WordOp::Gt
                        } else {
                            WordOp::Ge
                        };
                        let c2 = self.new_node(Node { op: lop, ..lo });
                        link(self, &prev, tf, c0);
                        let g = self.get(c1);
                        self.m(c0).nxt_f = g;
                        let g = self.get(c2);
                        self.m(c1).nxt_t = g;
                        if head == NIL {
                            head = self.get(c0);
                        }
                        (prev, tf) = if matches!(a.op, ApiOp::Gt | ApiOp::Ge) {
                            (vec![c0, c2], true)
                        } else {
                            (vec![c1, c2], false)
                        };
                    }
                    ApiOp::Eq | ApiOp::MaskedEq | ApiOp::Ne => {
                        let op = if a.op == ApiOp::MaskedEq {
                            WordOp::MaskedEq
                        } else {
                            WordOp::Eq
                        };
                        let c0 = self.new_node(Node { op, ..hi });
                        let c1 = self.new_node(Node { op, ..lo });
                        link(self, &prev, tf, c0);
                        let g = self.get(c1);
                        self.m(c0).nxt_t = g;
                        if head == NIL {
                            head = self.get(c0);
                        }
                        (prev, tf) = if a.op == ApiOp::Ne {
                            (vec![c0, c1], false)
                        } else {
                            (vec![c1], true)
                        };
                    }
                }
            } else {
                if a.op == ApiOp::MaskedEq && mlo == 0 {
                    continue;
                }
                let op = match a.op {
                    ApiOp::Ne | ApiOp::Eq => WordOp::Eq,
                    ApiOp::Lt | ApiOp::Ge => WordOp::Ge,
                    ApiOp::Le | ApiOp::Gt => WordOp::Gt,
                    ApiOp::MaskedEq => WordOp::MaskedEq,
                };
                let c = self.new_node(Node {
                    arg: a.index,
                    hi: false,
                    op,
                    op_orig: a.op,
                    mask: mlo,
                    datum: dlo & mlo,
                    datum_full: a.datum,
                    ..blank.clone()
                });
                link(self, &prev, tf, c);
                prev = vec![c];
                if head == NIL {
                    head = self.get(c);
                }
                // NE, LT and LE act on the false branch of EQ, GE and GT
                tf = !matches!(a.op, ApiOp::Ne | ApiOp::Lt | ApiOp::Le);
            }
        }
        if head != NIL {
            for &p in &prev {
                let m = self.m(p);
                if tf {
                    m.act_t_flg = true;
                    m.act_t = action;
                } else {
                    m.act_f_flg = true;
                    m.act_f = action;
                }
            }
        }
        head
    }

    /// `db_rule_add` for this syscall: add a rule with conditions `args` (at most one per
    /// argument) and `action`; `wide` for a 64-bit architecture.
    pub(crate) fn add(&mut self, args: &[ApiArg], action: u32, wide: bool) -> Result<(), AddError> {
        self.steps = 0;
        self.depth = 0;
        let mut new = self.rule_gen(args, action, wide);
        if !self.exists {
            self.exists = true;
            self.chains = new;
            self.action = action;
            return Ok(());
        }
        let mut removed = false;
        loop {
            if self.chains == NIL {
                if removed {
                    self.chains = new;
                    self.action = action;
                } else {
                    // an unconditional rule is already there: it wins
                    self.tree_put(&mut new);
                }
                return self.done();
            } else if new == NIL {
                let mut c = self.chains;
                self.tree_put(&mut c);
                self.chains = NIL;
                self.action = action;
                return self.done();
            }
            let mut state = IterState { flags: 0, action };
            let cnt = self.prune(self.chains, new, &mut state);
            if self.looped {
                return Err(self.err());
            }
            if cnt > 0 {
                removed = true;
                if self.chains == NIL {
                    continue;
                }
            } else if state.flags & IST_M_REDUNDANT == IST_M_REDUNDANT {
                // the existing tree is "shorter"
                self.tree_put(&mut new);
                return self.done();
            }
            break;
        }
        self.tree_add(Slot::Chains, new)?;
        self.tree_put(&mut new);
        self.done()
    }

    fn done(&self) -> Result<(), AddError> {
        if self.looped {
            Err(self.err())
        } else {
            Ok(())
        }
    }

    /// The tree in libseccomp's pseudo filter code layout (test debugging aid).
    #[cfg(test)]
    pub(crate) fn dump(&mut self) -> String {
        fn level(t: &mut SysTree, i: u32, lvl: usize, out: &mut String, budget: &mut u32) {
            let mut c = t.level_start(i);
            while c != NIL && *budget > 0 {
                *budget -= 1;
                let x = t.n(c).clone();
                let ind = "  ".repeat(lvl);
                let word = if x.hi { ".hi32" } else { ".lo32" };
                let op = match x.op {
                    WordOp::Eq => "==".to_owned(),
                    WordOp::Gt => ">".to_owned(),
                    WordOp::Ge => ">=".to_owned(),
                    WordOp::MaskedEq => format!("& {:#010x} ==", x.mask),
                };
                out.push_str(&format!(
                    "{ind}if ($a{}{word} {op} {}) [node {c} refs {}]\n",
                    x.arg, x.datum, x.refcnt
                ));
                if x.act_t_flg {
                    out.push_str(&format!("{ind}  action {:#x}\n", x.act_t));
                } else if x.nxt_t != NIL {
                    level(t, x.nxt_t, lvl + 1, out, budget);
                }
                if x.act_f_flg {
                    out.push_str(&format!("{ind}else\n{ind}  action {:#x}\n", x.act_f));
                } else if x.nxt_f != NIL {
                    out.push_str(&format!("{ind}else\n"));
                    level(t, x.nxt_f, lvl + 1, out, budget);
                }
                c = x.lvl_nxt;
            }
        }
        let mut out = String::new();
        if self.chains == NIL {
            out.push_str(&format!("action {:#x}\n", self.action));
        } else {
            let mut budget = 10_000;
            level(self, self.chains, 2, &mut out, &mut budget);
        }
        out
    }

    /// The syscall's decision: `Err(action)` when there are no conditions, else the blocks.
    pub(crate) fn decision(&mut self, default: u32) -> Result<Result<Blocks, u32>, AddError> {
        if self.chains == NIL {
            return Ok(Err(self.action));
        }
        self.steps = 0;
        self.depth = 0;
        let mut b = BlockBuilder {
            blocks: Vec::new(),
            dedup: HashMap::new(),
            memo: HashMap::new(),
            active: Vec::new(),
        };
        let ret = b.intern(Block::Ret(default));
        let start = self.level_start(self.chains);
        let root = self.block(&mut b, start, ret)?;
        Ok(Ok(Blocks {
            blocks: b.blocks,
            root,
        }))
    }

    /// The block deciding from the level that `start` begins (its nodes in order, then
    /// `cont`). Built from the level's last node back to its first, so that a long level is a
    /// loop here, not a recursion; only descending into a branch recurses.
    fn block(&mut self, b: &mut BlockBuilder, start: u32, cont: u32) -> Result<u32, AddError> {
        let mut level = Vec::new();
        let mut i = start;
        let mut k = 0;
        while i != NIL {
            if !self.spin(&mut k) || level.len() > MAX_BLOCKS {
                return Err(self.err());
            }
            level.push(i);
            i = self.n(i).lvl_nxt;
        }
        let mut next = cont;
        for &i in level.iter().rev() {
            next = self.node_block(b, i, next)?;
        }
        Ok(next)
    }

    /// The block deciding at node `i`, going on to `next` where its branch has no action.
    fn node_block(&mut self, b: &mut BlockBuilder, i: u32, next: u32) -> Result<u32, AddError> {
        if let Some(&id) = b.memo.get(&(i, next)) {
            return Ok(id);
        }
        // a node inside its own branch: libseccomp's walk would not end either
        if b.active.contains(&(i, next)) {
            self.cycle = true;
        }
        if self.cycle || !self.step() || b.memo.len() > MAX_BLOCKS {
            return Err(self.err());
        }
        b.active.push((i, next));
        self.depth += 1;
        let x = self.n(i).clone();
        let mut branch = |me: &mut SysTree, flg: bool, act: u32, sub: u32| {
            if flg {
                Ok(b.intern(Block::Ret(act)))
            } else if sub != NIL {
                let s = me.level_start(sub);
                me.block(b, s, next)
            } else {
                Ok(next)
            }
        };
        let t = branch(self, x.act_t_flg, x.act_t, x.nxt_t)?;
        let f = branch(self, x.act_f_flg, x.act_f, x.nxt_f)?;
        b.active.pop();
        self.depth -= 1;
        // A word under an empty mask is 0 and so is the (masked) datum: EQ and GE hold, GT
        // does not.
        let id = if t == f {
            t
        } else if x.mask == 0 {
            if x.op == WordOp::Gt {
                f
            } else {
                t
            }
        } else {
            b.intern(Block::Cmp {
                arg: x.arg,
                hi: x.hi,
                op: x.op,
                mask: x.mask,
                datum: x.datum,
                t,
                f,
            })
        };
        b.memo.insert((i, next), id);
        Ok(id)
    }
}

/// Blocks per syscall before the tree is given up as too large for a filter.
const MAX_BLOCKS: usize = 1 << 16;

/// One step of a syscall's decision: compare a word and go on, or return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Block {
    Ret(u32),
    /// Compare argument `arg`'s word (high or low; the only word on 32-bit ABIs) masked with
    /// `mask` against `datum`; go to block `t` or `f`.
    Cmp {
        arg: u32,
        hi: bool,
        op: WordOp,
        mask: u32,
        datum: u32,
        t: u32,
        f: u32,
    },
}

/// A syscall's decision as a DAG of blocks (shared where libseccomp's tree shares nodes);
/// `root` decides first, `order()` lays them out so that every jump goes forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub blocks: Vec<Block>,
    pub root: u32,
}

impl Blocks {
    /// The blocks reachable from the root, each before every block it jumps to.
    pub(crate) fn order(&self) -> Vec<u32> {
        let mut seen = vec![false; self.blocks.len()];
        let mut post = Vec::with_capacity(self.blocks.len());
        // iterative depth-first search (post order)
        let mut stack: Vec<(u32, bool)> = vec![(self.root, false)];
        while let Some((b, expanded)) = stack.pop() {
            if expanded {
                post.push(b);
                continue;
            }
            if seen[b as usize] {
                continue;
            }
            seen[b as usize] = true;
            stack.push((b, true));
            if let Block::Cmp { t, f, .. } = self.blocks[b as usize] {
                for s in [f, t] {
                    if !seen[s as usize] {
                        stack.push((s, false));
                    }
                }
            }
        }
        post.reverse();
        post
    }
}

struct BlockBuilder {
    blocks: Vec<Block>,
    dedup: HashMap<Block, u32>,
    memo: HashMap<(u32, u32), u32>,
    active: Vec<(u32, u32)>,
}

impl BlockBuilder {
    fn intern(&mut self, b: Block) -> u32 {
        if let Some(&id) = self.dedup.get(&b) {
            return id;
        }
        self.blocks.push(b);
        let id = (self.blocks.len() - 1) as u32;
        self.dedup.insert(b, id);
        id
    }
}
