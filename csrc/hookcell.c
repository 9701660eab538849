/*
** hookcell.c: how the allocator hook finds its tracker while the state
** keeps the host's allocator ud.
**
** Hosts read their ud back (skynet's service_snlua.c casts it to its own
** struct in lua_resumeX and signal_hook), so track() installs memprobe_hook
** with the ud the host had. A Lua allocator gets nothing but that ud, so
** the hook looks the ud up in a process-wide table of cells: the one
** mutable C state of memprobe that is not per lua_State, because nothing
** per state reaches the allocator. A cell holds the tracker: what to
** forward to (the host's f and ud) and the counters.
**
** Cells are never freed. Lua 5.5 external strings keep the (f, ud) that
** was current when they were made and free through it later, after
** untrack() and in lua_close after memprobe's finalizers: such a call
** finds its cell still there, retired: its tracker has no limit, mark or
** ledger left, so the call is forwarded as it is. The
** count is bounded: a retired cell is claimed again for the same ud and
** allocator once its state re-tracks or has closed (skynet's per-service
** ud at an address malloc hands out again), so there are never more
** cells than uds in use at once plus those of untracked, unclosed states
** (about 1 KiB each, the tracker's histograms included).
**
** Only one live state can own a ud's table cell. When a second tracked
** state has the same ud (two luaL_newstate states have NULL), its cell is
** "boxed": installed as the ud itself, with memprobe_hook_boxed; that
** state then reads the cell back as its ud (memprobe.h says so).
**
** Threads: states in different threads track and untrack at once. The
** table (a fixed array of buckets) is written under a mutex and read
** without one: a cell is published fully built at the head of its bucket
** (release) and found by its key (acquire).
** A cell's fields change only in the thread that runs its state, or
** under the mutex while it is retired and nothing runs through it.
*/
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mp_cell *cells;       /* every cell, linked through 'all' */
mp_cell *memprobe_cells[1 << MP_CELLBITS];  /* read by the hook unlocked */

/* Under the lock: the table cell of ud, or NULL. */
static mp_cell *lookup (void *ud) {
  mp_cell *c;
  for (c = *memprobe_bucket(ud); c != NULL; c = c->next)
    if (c->key == ud)
      return c;
  return NULL;
}

/* The table cell of ud, or NULL: the checked lookup, for memprobe_current. */
mp_cell *memprobe_cell_get (void *ud) {
  mp_cell *c;
  pthread_mutex_lock(&lock);
  c = lookup(ud);
  pthread_mutex_unlock(&lock);
  return c;
}

/* Under the lock: publishes c, fully built, at the head of its bucket. */
static void insert (mp_cell *c) {
  mp_cell **b = memprobe_bucket(c->key);
  c->next = *b;
  __atomic_store_n(b, c, __ATOMIC_RELEASE);
}

/*
** A retired cell may count for a new claim when it forwards to the same
** allocator (its older blocks then still go to the right place) and its
** state is the claimant or has closed: no other live state sends it
** calls.
*/
static int reusable (const mp_cell *c, lua_Alloc f, void *ud,
                     const void *owner) {
  return c->t == NULL && c->f == f && c->ud == ud &&
         (c->closed || (owner != NULL && c->owner == owner));
}

static mp_cell *new_cell (void *ud, lua_Alloc f, int boxed) {
  mp_cell *c = (mp_cell *)calloc(1, sizeof(mp_cell));
  if (c == NULL)
    return NULL;
  c->key = boxed ? (void *)c : ud;
  c->f = f;
  c->ud = ud;
  c->boxed = boxed;
  memprobe_tracker_init(&c->tr, f, ud);
  c->tr.cell = c;
  return c;
}

/*
** Claims a cell for the state 'owner' (its close sentinel; NULL for a
** memprobe_newstate state) over the allocator (f, ud), and returns its
** tracker, counting from zero. Sets hf and hud to what the state must
** install. NULL when out of memory.
*/
mp_tracker *memprobe_cell_claim (lua_Alloc f, void *ud, const void *owner,
                                 lua_Alloc *hf, void **hud) {
  mp_cell *c;
  pthread_mutex_lock(&lock);
  c = lookup(ud);
  if (c != NULL && !reusable(c, f, ud, owner))  /* someone else's: box */
    for (c = cells; c != NULL; c = c->all)
      if (c->boxed && reusable(c, f, ud, owner))
        break;
  if (c == NULL) {
    int boxed = lookup(ud) != NULL;
    if ((c = new_cell(ud, f, boxed)) == NULL) {
      pthread_mutex_unlock(&lock);
      return NULL;
    }
    c->all = cells;
    cells = c;
    if (!boxed)
      insert(c);  /* published with its tracker initialized */
  }
  else {  /* a retired cell: its tracker counts from zero again */
    memprobe_tracker_init(&c->tr, f, ud);
    c->tr.cell = c;
  }
  c->owner = owner;
  c->closed = 0;
  c->gen++;
  c->t = &c->tr;
  pthread_mutex_unlock(&lock);
  *hf = c->boxed ? memprobe_hook_boxed : memprobe_hook;
  *hud = c->boxed ? (void *)c : ud;
  return c->t;
}

/*
** The tracker stops counting for its state: its limit, mark and ledger
** go, and from now on the cell only forwards. 'closed' when its state is
** closing or closed, so that another state may claim it.
*/
void memprobe_cell_retire (mp_cell *c, int closed) {
  pthread_mutex_lock(&lock);
  memprobe_tracker_clear(&c->tr);
  c->t = NULL;
  c->gen++;
  if (closed)
    c->closed = 1;
  pthread_mutex_unlock(&lock);
}

/*
** The state 'owner' closes: its cells, once retired (the tracker's own
** finalizer may run before or after this), may go to other states.
*/
void memprobe_cell_closing (const void *owner) {
  mp_cell *c;
  pthread_mutex_lock(&lock);
  for (c = cells; c != NULL; c = c->all)
    if (c->owner == owner)
      c->closed = 1;
  pthread_mutex_unlock(&lock);
}
