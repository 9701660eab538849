/*
** heapdom.c: the dominator tree of a snapshot and the retained sizes it
** gives, over the edges the walk recorded (heap.h, edgelog).
**
** The graph: a vertex per record (r + 1) and a virtual root (0) with an
** edge to every root (F_ROOT: the registry, the main thread, the entries
** of package.loaded as modules() counts them). Object x dominates y when
** every path from the virtual root to y goes through x: cutting x frees
** y. The bytes x retains are its own plus those of every object it
** dominates, which a collection frees once x is unreachable.
**
** The algorithm is semi-NCA (Georgiadis, "Linear-Time Algorithms for
** Dominators and Related Problems", 2005; the variant LLVM's dominator
** trees use), iterative throughout, in phases of the walk (PH_*):
**
** - PH_DFS numbers the vertices in depth-first preorder from the virtual
**   root, with an explicit stack made of the tree's parent links (each
**   vertex's edge cursor lives in arrays the later phases reuse);
** - PH_PREDS lists each vertex's predecessors by number (CSR: counted,
**   summed, filled);
** - PH_SEMI computes semidominators in reverse preorder: sdom(w) is the
**   least of parent(w) and, for each predecessor v, the least sdom on the
**   path of processed vertices above v, found by eval() in a link-eval
**   forest with path compression (the forest is the parent array itself:
**   vertices numbered above w are linked);
** - PH_IDOM: idom(w) is the nearest common ancestor of parent(w) and
**   sdom(w) in the dominator tree built so far: from parent(w), climb
**   idom links while the number exceeds sdom(w);
** - PH_RETAIN sums sizes up the tree in reverse preorder (a dominator's
**   number is below those it dominates) and keeps the TOPK largest.
**
** O(m log n) time, usually near linear. Each phase advances a vertex,
** UNIT edges or 32 eval links per unit of the walker's budget, and keeps
** its cursors (and an eval's half-compressed path) in the snapshot, so
** that a step stops anywhere. The arrays are mapped outside the Lua heap and
** counted in the snapshot's bookkeeping; the working ones are unmapped a
** piece per unit once the tree is known, leaving NUM, IDOM and RET.
*/
#include "internal.h"
#include "heap.h"

#include <string.h>


#define PIECE     (1u << 20)  /* bytes unmapped per unit */
#define SCAN      256         /* records the root scan passes per unit */
#define UNIT      4           /* edges per unit: a few ns each, where a
                                 table entry of the walk costs tens */


/* A unit of the walker's budget every UNIT calls; 0 when it is spent. */
static int tick (walker *w) {
  return (++w->s->d.tick & (UNIT - 1)) != 0 || memprobe_budget(w);
}


/* Maps array k of n elements of elsize bytes (zeroed). */
static void *dom_map (walker *w, int k, size_t n, size_t elsize) {
  domtree *d = &w->s->d;
  size_t size = MP_PAGES(n > 0 ? n * elsize : 1);
  void *p = memprobe_book_map(&w->s->book, size);
  if (p == NULL) memprobe_nomem(w->L);
  d->a[k] = p;
  d->size[k] = size;
  return p;
}

/* Unmaps up to 'bytes' of array k from its end; 1 when it is gone. */
static int dom_unmap (snap *s, int k, size_t bytes) {
  domtree *d = &s->d;
  size_t n = d->size[k] < bytes ? d->size[k] : bytes;
  if (d->a[k] == NULL) return 1;
  d->size[k] -= n;
  memprobe_book_unmap(&s->book, (char *)d->a[k] + d->size[k], n);
  if (d->size[k] == 0) d->a[k] = NULL;
  return d->a[k] == NULL;
}

/* Gives back up to 'bytes' of the arrays, the working ones first (all of
** them once the snapshot closes); 1 when none is left. */
int memprobe_dom_release (snap *s, size_t bytes) {
  int k;
  for (k = 0; k < DA_N; k++)
    if (s->d.a[k] != NULL) {
      dom_unmap(s, k, bytes);
      return 0;
    }
  return 1;
}

void memprobe_dom_free (snap *s) {
  int k;
  for (k = 0; k < DA_N; k++) dom_unmap(s, k, (size_t)-1);
  s->d.done = 0;
}

/* The bytes of vertex v itself: none for the virtual root, the walk's
** own objects and what the host shares. */
static double own (const snap *s, uint32_t v) {
  const hobj *o;
  if (v == 0) return 0;
  o = REC(s, v - 1);
  return counted(o) ? SIZE(o) : 0;
}

/*
** PH_DFS: preorder numbers from the virtual root (number 1). The current
** vertex is d->i; going back up follows PARENT, and each vertex's next
** edge and the edges it has left are in SEMI and LABEL (the virtual
** root's: the next record to look at for F_ROOT).
*/
static int dom_dfs (walker *w) {
  snap *s = w->s;
  domtree *d = &s->d;
  uint32_t *num, *vert, *parent, *cur, *left;
  if (d->a[DA_NUM] == NULL) {
    size_t nv = (size_t)s->obj.n + 1;
    d->nv = (uint32_t)nv;
    dom_map(w, DA_NUM, nv, 4);
    dom_map(w, DA_VERT, nv + 1, 4);
    dom_map(w, DA_PARENT, nv + 1, 4);
    dom_map(w, DA_SEMI, nv + 1, 4);
    dom_map(w, DA_LABEL, nv + 1, 4);
    DOM32(d, DA_NUM)[0] = 1;
    d->nr = 1;
    d->i = 1;  /* vert[1] = 0, the virtual root; its cursor at record 0 */
  }
  num = DOM32(d, DA_NUM); vert = DOM32(d, DA_VERT);
  parent = DOM32(d, DA_PARENT); cur = DOM32(d, DA_SEMI);
  left = DOM32(d, DA_LABEL);
  while (d->i != 0) {
    uint32_t c = d->i, to;
    if (!tick(w)) return 0;
    if (vert[c] == 0) {  /* the virtual root: the next root record */
      uint32_t r = cur[c], end = s->obj.n - r > SCAN ? r + SCAN : s->obj.n;
      while (r < end && !(REC(s, r)->flags & F_ROOT)) r++;
      if (r == end) {  /* none among these */
        cur[c] = r;
        if (r == s->obj.n) d->i = parent[c];
        continue;
      }
      cur[c] = r + 1;
      to = r + 1;
    }
    else {
      if (left[c] == 0) { d->i = parent[c]; continue; }
      to = EDGE(s, cur[c])->to + 1;
      cur[c]++;
      left[c]--;
    }
    if (num[to] == 0) {  /* a tree edge: go down */
      uint32_t n = ++d->nr, first;
      num[to] = n;
      vert[n] = to;
      parent[n] = c;
      left[n] = memprobe_edges(s, to - 1, &first);
      cur[n] = first;
      d->i = n;
    }
  }
  return 1;
}

/* Runs body for each edge of vertex number i from its d->k-th on whose
** target is numbered (tn), a unit each; returns 0 from the function when
** the budget runs out (d->k says where). */
#define EACH_EDGE(w, d, i, body) do { \
    uint32_t first_, n_ = memprobe_edges((w)->s, DOM32(d, DA_VERT)[i] - 1, \
                                         &first_); \
    for (; (d)->k < n_; (d)->k++) { \
      uint32_t to_ = EDGE((w)->s, first_ + (d)->k)->to + 1, tn; \
      if (!tick(w)) return 0; \
      if ((tn = DOM32(d, DA_NUM)[to_]) == 0) continue; \
      body; \
    } \
    (d)->k = 0; \
  } while (0)

/*
** PH_PREDS: the predecessors of each number, in three parts: counted into
** PSTART (the virtual root counts for each root), summed so that
** PSTART[j] ends j's run, then filled backwards so that it starts it.
** The first part also sets SEMI and LABEL to the number itself, and IDOM
** to the parent.
*/
static int dom_preds (walker *w) {
  snap *s = w->s;
  domtree *d = &s->d;
  uint32_t *ps, *vert = DOM32(d, DA_VERT), *pred;
  if (d->sub == 0) {
    if (d->a[DA_PSTART] == NULL) {
      dom_map(w, DA_PSTART, (size_t)d->nr + 2, 4);
      dom_map(w, DA_IDOM, (size_t)d->nr + 1, 4);
      d->i = 1;
      d->k = 0;
    }
    ps = DOM32(d, DA_PSTART);
    for (; d->i <= d->nr; d->i++, d->open = 0) {
      uint32_t i = d->i;
      if (!d->open) {
        if (!memprobe_budget(w)) return 0;
        DOM32(d, DA_SEMI)[i] = DOM32(d, DA_LABEL)[i] = i;
        DOM32(d, DA_IDOM)[i] = DOM32(d, DA_PARENT)[i];
        d->open = 1;
        if (i == 1) continue;
        if (REC(s, vert[i] - 1)->flags & F_ROOT) ps[i]++;
      }
      EACH_EDGE(w, d, i, ps[tn]++);
    }
    d->sub = 1;
    d->i = 1;
  }
  ps = DOM32(d, DA_PSTART);
  if (d->sub == 1) {
    for (; d->i <= d->nr + 1; d->i++) {
      if ((d->i & 63) == 0 && !memprobe_budget(w)) return 0;
      ps[d->i] += ps[d->i - 1];
    }
    dom_map(w, DA_PRED, ps[d->nr + 1], 4);
    d->sub = 2;
    d->i = 2;
    d->k = 0;
  }
  pred = DOM32(d, DA_PRED);
  for (; d->i <= d->nr; d->i++, d->open = 0) {
    uint32_t i = d->i;
    if (!d->open) {
      if (!memprobe_budget(w)) return 0;
      d->open = 1;
      if (REC(s, vert[i] - 1)->flags & F_ROOT) pred[--ps[i]] = 1;
    }
    EACH_EDGE(w, d, i, pred[--ps[tn]] = i);
  }
  d->sub = 0;
  return 1;
}

/*
** eval(v) for the vertex numbered d->i (the link-eval forest holds the
** numbers above it): the label of least semidominator on the forest path
** from v up to, not including, the root of its tree, compressing the
** path on the way. Resumable: the climb pushes the path on STACK, the
** compression pops it, d->ev says which is under way. Returns 0 when the
** budget ran out, else 1 with the label in *out.
*/
static int eval (walker *w, uint32_t v, uint32_t *out) {
  domtree *d = &w->s->d;
  uint32_t *parent = DOM32(d, DA_PARENT), *label = DOM32(d, DA_LABEL);
  uint32_t *semi = DOM32(d, DA_SEMI), *stack = DOM32(d, DA_STACK);
  uint32_t last = d->i + 1, n = 0;
  if (d->ev == 0) {
    if (parent[v] < last) { *out = label[v]; return 1; }
    d->x = v;
    d->sp = 0;
    d->ev = 1;
  }
  if (d->ev == 1) {  /* climb to the tree's root, the path on the stack */
    do {
      if ((++n & 31) == 0 && !memprobe_budget(w)) return 0;
      stack[d->sp++] = d->x;
      d->x = parent[d->x];
    } while (parent[d->x] >= last);
    d->p = d->x;
    d->ev = 2;
  }
  while (d->sp > 0) {  /* each points to the root, keeps the least label */
    uint32_t x;
    if ((++n & 31) == 0 && !memprobe_budget(w)) return 0;
    x = stack[--d->sp];
    parent[x] = parent[d->p];
    if (semi[label[d->p]] < semi[label[x]]) label[x] = label[d->p];
    d->p = x;
  }
  d->ev = 0;
  *out = label[d->p];
  return 1;
}

/* PH_SEMI: semidominators, from the last number down to 2. */
static int dom_semi (walker *w) {
  domtree *d = &w->s->d;
  uint32_t *semi, *ps, *pred;
  if (d->a[DA_STACK] == NULL) {
    dom_map(w, DA_STACK, (size_t)d->nr + 1, 4);
    d->i = d->nr;
    d->k = 0;
    d->sub = 0;
  }
  semi = DOM32(d, DA_SEMI);
  ps = DOM32(d, DA_PSTART);
  pred = DOM32(d, DA_PRED);
  for (; d->i >= 2; d->i--) {
    uint32_t i = d->i;
    if (d->sub == 0) {  /* starting i */
      if (!memprobe_budget(w)) return 0;
      semi[i] = DOM32(d, DA_PARENT)[i];
      d->k = ps[i];
      d->sub = 1;
    }
    for (; d->k < ps[i + 1]; d->k++) {
      uint32_t u;
      if (d->ev == 0 && !tick(w)) return 0;
      if (!eval(w, pred[d->k], &u)) return 0;
      if (semi[u] < semi[i]) semi[i] = semi[u];
    }
    d->sub = 0;
  }
  return 1;
}

/* PH_IDOM: idom(w) = NCA(parent(w), sdom(w)), from number 2 up; the
** climb's state is IDOM[i] itself, so a step may stop within it. */
static int dom_idom (walker *w) {
  domtree *d = &w->s->d;
  uint32_t *idom = DOM32(d, DA_IDOM), *semi = DOM32(d, DA_SEMI);
  if (d->i < 2) d->i = 2;
  for (; d->i <= d->nr; d->i++) {
    uint32_t i = d->i;
    if (!tick(w)) return 0;
    while (idom[i] > semi[i]) {
      idom[i] = idom[idom[i]];
      if (!tick(w)) return 0;
    }
  }
  return 1;
}

/* Whether vertex a retains more than vertex b (ties: the higher number
** first, so that in PH_RETAIN, which offers them from the last number
** down, a tie never displaces one kept). */
static int more (const double *ret, const uint32_t *num, uint32_t a,
                 uint32_t b) {
  double x = ret[num[a]], y = ret[num[b]];
  return x != y ? x > y : num[a] > num[b];
}

/* The top list is a min-heap of vertices while it fills: its root is
** the least retained kept. */
static void sift (domtree *d, uint32_t at) {
  const double *ret = DOMRET(d);
  const uint32_t *num = DOM32(d, DA_NUM);
  uint32_t *h = d->top, n = d->ntop;
  for (;;) {
    uint32_t l = 2 * at + 1, r = l + 1, m = at, t;
    if (l < n && more(ret, num, h[m], h[l])) m = l;
    if (r < n && more(ret, num, h[m], h[r])) m = r;
    if (m == at) return;
    t = h[m]; h[m] = h[at]; h[at] = t;
    at = m;
  }
}

static void top_add (domtree *d, uint32_t v) {
  uint32_t at;
  if (d->ntop == TOPK) {
    if (!more(DOMRET(d), DOM32(d, DA_NUM), v, d->top[0])) return;
    d->top[0] = v;
    sift(d, 0);
    return;
  }
  at = d->ntop++;
  d->top[at] = v;
  while (at > 0) {  /* up while it retains less than its parent */
    uint32_t up = (at - 1) / 2, t;
    if (!more(DOMRET(d), DOM32(d, DA_NUM), d->top[up], v)) break;
    t = d->top[up]; d->top[up] = d->top[at]; d->top[at] = t;
    at = up;
  }
}

/* Sorts the heap largest first: pops the least to the end each time. */
static void top_sort (domtree *d) {
  uint32_t n = d->ntop;
  while (d->ntop > 1) {
    uint32_t t = d->top[0];
    d->top[0] = d->top[--d->ntop];
    d->top[d->ntop] = t;
    sift(d, 0);
  }
  d->ntop = n;
}

/*
** PH_RETAIN: each number's own bytes, then from the last number down
** each one's total added to its dominator's (final by then: all it
** dominates is numbered above it), its IDOM turned into a vertex, and it
** offered to the top list; then the working arrays go, a piece a unit.
*/
static int dom_retain (walker *w) {
  snap *s = w->s;
  domtree *d = &s->d;
  uint32_t *vert = DOM32(d, DA_VERT), *idom = DOM32(d, DA_IDOM);
  double *ret;
  if (d->sub == 0) {
    if (d->a[DA_RET] == NULL) {
      dom_map(w, DA_RET, (size_t)d->nr + 1, sizeof(double));
      d->i = 1;
    }
    ret = DOMRET(d);
    for (; d->i <= d->nr; d->i++) {
      uint32_t v = vert[d->i];
      if ((d->i & 15) == 0 && !memprobe_budget(w)) return 0;
      ret[d->i] = own(s, v);
    }
    d->sub = 1;
    d->i = d->nr;
    d->ntop = 0;
  }
  ret = DOMRET(d);
  if (d->sub == 1) {
    for (; d->i >= 2; d->i--) {
      uint32_t i = d->i;
      if ((i & 15) == 0 && !memprobe_budget(w)) return 0;
      ret[idom[i]] += ret[i];
      idom[i] = vert[idom[i]];
      top_add(d, vert[i]);
    }
    idom[1] = 0;
    top_sort(d);
    d->sub = 2;
    d->done = 1;
  }
  /* the working arrays go back, a piece per unit */
  while (d->a[DA_VERT] || d->a[DA_PARENT] || d->a[DA_SEMI] ||
         d->a[DA_LABEL] || d->a[DA_PSTART] || d->a[DA_PRED] ||
         d->a[DA_STACK]) {
    int k;
    if (!memprobe_budget(w)) return 0;
    for (k = DA_VERT; k <= DA_STACK; k++)
      if (k != DA_IDOM && d->a[k] != NULL) { dom_unmap(s, k, PIECE); break; }
  }
  d->sub = 0;
  return 1;
}

/* Runs the phase s->phase (PH_DFS .. PH_RETAIN); 1 when it is over.
** Without edges (or with a log that overflowed) there is nothing to do. */
int memprobe_dom_step (walker *w) {
  snap *s = w->s;
  if (!s->e.on || s->e.full) return 1;
  switch (s->phase) {
    case PH_DFS: return dom_dfs(w);
    case PH_PREDS: return dom_preds(w);
    case PH_SEMI: return dom_semi(w);
    case PH_IDOM: return dom_idom(w);
    case PH_RETAIN: return dom_retain(w);
    default: return 1;
  }
}


/*
** {======================================================
** The methods that read it (memprobe.heap wraps them: paths joined)
** =======================================================
*/

/* The snapshot at 1, its dominators known; raises otherwise. */
static snap *checkdom (lua_State *L, const char *what) {
  snap *s = memprobe_checksnap(L, 1);
  if (!s->e.on)
    luaL_error(L, "bad argument #1 to '%s' (snapshot taken with "
               "retained = false)", what);
  if (s->e.full)
    luaL_error(L, "bad argument #1 to '%s' (snapshot has more edges than "
               "it can record)", what);
  if (!s->d.done)
    luaL_error(L, "bad argument #1 to '%s' (snapshot is not finished: "
               "step it until it returns true)", what);
  return s;
}

/* Pushes { path, type, self, retained } for record r. */
static void push_row (lua_State *L, const snap *s, uint32_t r) {
  const hobj *o = REC(s, r);
  lua_createtable(L, 0, 4);
  memprobe_pushpath(L, s, r);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, memprobe_typename(o->type));
  lua_setfield(L, -2, "type");
  memprobe_setnum(L, "self", counted(o) ? SIZE(o) : 0);
  memprobe_setnum(L, "retained", memprobe_retained(s, r));
}

/* snap:_retained(n) -> the rows of the n records that retain most,
** largest first (n at most TOPK). */
static int l_retained (lua_State *L) {
  snap *s = checkdom(L, "retained");
  lua_Integer n = luaL_optinteger(L, 2, 20);
  uint32_t i;
  luaL_argcheck(L, n >= 1 && n <= TOPK, 2, "n must be 1..1024");
  if ((uint32_t)n > s->d.ntop) n = s->d.ntop;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < (uint32_t)n; i++) {
    push_row(L, s, s->d.top[i] - 1);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* The record of the value at i, or of record number i (an integer, from
** _children); -1 when the snapshot has none. */
static int64_t record_of (lua_State *L, const snap *s, int i) {
  int t = lua_type(L, i);
  if (t == LUA_TNUMBER) {
    lua_Number r = lua_tonumber(L, i);
    return r >= 0 && r < (lua_Number)s->obj.n ? (int64_t)r : -1;
  }
  if (!memprobe_collectable(t)) return -1;
  return memprobe_lookup(s, memprobe_ident(L, i, t));
}

/* snap:_retainers(x, n) -> rows from x up its dominators to a root (at
** most n), or nil when the snapshot does not have x or no root reaches
** it along the recorded edges. */
static int l_retainers (lua_State *L) {
  snap *s = checkdom(L, "retainers");
  int64_t r = record_of(L, s, 2);
  lua_Integer n = luaL_optinteger(L, 3, 64), k = 0;
  luaL_argcheck(L, n >= 1, 3, "n must be at least 1");
  if (r < 0 || memprobe_idom(s, (uint32_t)r) < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_newtable(L);
  while (r >= 0 && k < n) {
    push_row(L, s, (uint32_t)r);
    lua_rawseti(L, -2, (int)++k);
    r = memprobe_idom(s, (uint32_t)r) - 1;  /* -1 past the root */
  }
  return 1;
}

/* snap:_children([r]) -> { {record, edge}, ... }: record r's out-edges
** (edges as paths show them), or without r the roots; for the lookup of
** a path. */
static int l_children (lua_State *L) {
  snap *s = checkdom(L, "retainers");
  int k = 0, roots = lua_isnoneornil(L, 2);
  lua_settop(L, 2);
  lua_newtable(L);
  if (roots) {
    uint32_t r;
    for (r = 0; r < s->obj.n; r++) {
      const hobj *o = REC(s, r);
      if (!(o->flags & F_ROOT)) continue;
      lua_createtable(L, 2, 0);
      mp_pushint(L, r);
      lua_rawseti(L, -2, 1);
      memprobe_pushedge(L, s, o->edge, o->name, 0);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, -2, ++k);
    }
  }
  else {
    int64_t r = record_of(L, s, 2);
    uint32_t i, n = r >= 0 ? memprobe_edges(s, (uint32_t)r, &i) : 0;
    for (; n > 0; n--, i++) {
      const mp_edge *e = EDGE(s, i);
      int kind = MP_EDGE_KIND(e);
      lua_createtable(L, 2, 0);
      mp_pushint(L, e->to);
      lua_rawseti(L, -2, 1);
      memprobe_pushedge(L, s, kind, MP_EDGE_NAME(e),
                        memprobe_datalike(s, kind, (uint32_t)r + 1));
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, -2, ++k);
    }
  }
  return 1;
}

/* snap:_dominator(x) -> record of x's immediate dominator (-1: the
** virtual root), or nil; for specs. */
static int l_dominator (lua_State *L) {
  snap *s = checkdom(L, "dominator");
  int64_t r = record_of(L, s, 2);
  int64_t d = r >= 0 ? memprobe_idom(s, (uint32_t)r) : -1;
  if (d < 0) lua_pushnil(L);
  else mp_pushint(L, d - 1);
  return 1;
}

/* snap:_retained_of(x) -> the bytes x retains and its label (the root
** it was registered as, in modules()), or nil. */
static int l_retained_of (lua_State *L) {
  snap *s = checkdom(L, "retained");
  int64_t r = record_of(L, s, 2);
  double b = r >= 0 ? memprobe_retained(s, (uint32_t)r) : -1;
  if (b < 0) {
    lua_pushnil(L);
    return 1;
  }
  memprobe_pushnum(L, b);
  mp_pushint(L, REC(s, r)->label);
  return 2;
}

/* snap:_record(x) -> x's record number, or nil; for specs. */
static int l_record (lua_State *L) {
  snap *s = memprobe_checksnap(L, 1);
  int64_t r = record_of(L, s, 2);
  if (r < 0) lua_pushnil(L);
  else mp_pushint(L, r);
  return 1;
}

void memprobe_open_heapdom (lua_State *L) {
  static const luaL_Reg methods[] = {
    { "_children",  l_children },
    { "_dominator", l_dominator },
    { "_record",    l_record },
    { "_retained",  l_retained },
    { "_retained_of", l_retained_of },
    { "_retainers", l_retainers },
    { NULL, NULL }
  };
  luaL_getmetatable(L, SNAP_MT);
  lua_getfield(L, -1, "__index");
  mp_setfuncs(L, methods, 0);
  lua_pop(L, 2);
}

/* }====================================================== */
