-- The heap the heap benches walk: about n objects, records of a table, a
-- string and a pair each, in one array at package.loaded.bench_world;
-- collected once built. Loaded by bench/heap.lua and bench/heap_scale.lua
-- from their own directory:
--   local world = dofile(dir .. "heap_world.lua")(n)
return function(n)
  local world = {}
  for i = 1, n / 3 do
    world[i] = { id = i, name = "entity " .. i, pos = { i, -i } }
  end
  package.loaded.bench_world = world
  collectgarbage("collect")
  return world
end
