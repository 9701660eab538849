// Loads a .heapsnapshot with memlab and prints what memlab sees in it, as
// JSON on one line: node and edge counts, the total self size, the names
// of the nodes, and the largest retained sizes (memlab's own dominator
// tree). spec/26-heapsnapshot_spec.lua compares them with memprobe's.
// Usage: node tools/memlab/check.js FILE [TOP]
'use strict';
const {getFullHeapFromFile} = require('@memlab/heap-analysis');

async function main() {
  const file = process.argv[2];
  const top = Number(process.argv[3] || 20);
  const heap = await getFullHeapFromFile(file);
  let total = 0, edges = 0;
  const rows = [];
  heap.nodes.forEach(node => {
    total += node.self_size;
    edges += node.edge_count;
    if (node.nodeIndex === 0) return;  // the synthetic root
    rows.push({id: node.id, name: node.name, type: node.type,
               self: node.self_size, retained: node.retainedSize});
  });
  rows.sort((a, b) => b.retained - a.retained || a.id - b.id);
  const out = {nodes: heap.nodes.length, edges, edge_array: heap.edges.length,
               total, root_retained: heap.nodes.get(0).retainedSize,
               top: rows.slice(0, top)};
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(err => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
