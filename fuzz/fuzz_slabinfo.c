/*
** memprobe_parse_slabinfo (every slabinfo version) and
** memprobe_parse_nodecounts (the /sys/kernel/slab counters).
** Seeds: proc/slabinfo sys/kernel/slab/dentry/objects
** sys/kernel/slab/dentry/slabs
*/
#include "fuzz.h"

static void on_slab (void *ud, const mp_slab *c) {
  fz_bounds *b = (fz_bounds *)ud;
  if (c->nlen > 0)
    FZ_CHECK(c->name >= b->begin && c->name + c->nlen <= b->end);
  b->calls++;
}

static void on_node (void *ud, int node, int64_t v) {
  (void)ud; (void)v;
  FZ_CHECK(node >= 0);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  int major = 0, minor = 0, skipped = 0;
  int64_t v;
  fz_init(&b, s, size);
  memprobe_parse_slabinfo(s, size, &major, &minor, &skipped, on_slab, &b);
  FZ_CHECK(skipped >= 0);
  memprobe_parse_nodecounts(s, size, &v, on_node, NULL);
  free(s);
  return 0;
}
