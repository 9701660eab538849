-- examples/prometheus: the rules fire on synthetic leaks (promtool), the
-- dashboard queries what exists, and a real Prometheus scrapes the
-- OpenResty example's /metrics and a CLI-written textfile without error,
-- with the labels and values memprobe wrote.
local H = require "spec.helper"

local function have(cmd) return H.run("command -v " .. cmd) ~= nil end

local function decode(s)
  local ok, cjson = pcall(require, "cjson")
  if ok then return cjson.decode(s) end
  return require("dkjson").decode(s)
end

-- Sample lines of an exposition: { "name{labels}" = value }, and their count.
local function samples(text)
  local r, n = {}, 0
  for line in text:gmatch("[^\n]+") do
    if not line:match("^#") then
      local key, v = line:match("^(%S+) (%S+)$")
      r[key] = tonumber(v)
      n = n + 1
    end
  end
  return r, n
end

-- A Prometheus API metric as the exposition writes it, without the labels
-- Prometheus adds.
local function key(metric)
  local names = {}
  for k in pairs(metric) do
    if k ~= "__name__" and k ~= "job" and k ~= "instance" then names[#names + 1] = k end
  end
  table.sort(names)
  local l = {}
  for i, k in ipairs(names) do
    l[i] = k .. '="' .. metric[k]:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"') .. '"'
  end
  return metric.__name__ .. (#l > 0 and "{" .. table.concat(l, ",") .. "}" or "")
end

describe("examples/prometheus", function()
  it("has rules that promtool accepts and whose unit tests fire", function()
    if not have("promtool") then pending("promtool not installed") return end
    local out = H.run("cd examples/prometheus && promtool check rules rules.yml 2>&1 && " ..
                      "promtool test rules rules_test.yml 2>&1; echo rc=$?")
    assert.matches("SUCCESS: 13 rules found", out, 1, true)
    assert.matches("  SUCCESS\n%s*rc=0\n$", out)
  end)

  it("has a dashboard whose queries name exported families or recorded rules", function()
    local dash = decode(assert(H.slurp("examples/prometheus/dashboard.json")))
    local known = {}
    for name in H.slurp("examples/prometheus/rules.yml"):gmatch("record: (%S+)") do
      known[name] = true
    end
    for name in H.slurp("lua/memprobe/export.lua"):gmatch('"(memprobe_[%w_]+)"') do
      known[name] = true
    end
    for _, k in ipairs({ "rss", "pss", "uss", "swap" }) do
      known["memprobe_process_" .. k .. "_bytes"] = true
    end
    assert.is_true(#dash.panels >= 8)
    for _, p in ipairs(dash.panels) do
      for _, t in ipairs(p.targets) do
        for name in t.expr:gmatch("memprobe[_:][%w_:]+") do
          assert(known[name], p.title .. ": " .. name .. " is neither exported nor recorded")
        end
      end
    end
  end)

  it("is scraped by a real Prometheus with the labels and values memprobe wrote", function()
    for _, cmd in ipairs({ "prometheus", "nginx", "curl", "python3", "timeout" }) do
      if not have(cmd) then pending(cmd .. " not installed") return end
    end
    if _VERSION ~= "Lua 5.4" or jit or H.asan or H.valgrind then
      pending("runs once, in the plain Lua 5.4 suite") return
    end
    if not H.slurp("build/jit/memprobe/core.so") then
      pending("no LuaJIT build (make build)") return
    end
    local dir = H.tmpdir()
    math.randomseed(os.time())
    local base = math.random(30000, 39990)
    local np, hp, pp = base, base + 1, base + 2
    local cmd = ("timeout 90 sh examples/openresty/run.sh %d " ..
                 "sh examples/prometheus/scrape_test.sh %s %d %d %d 2>&1; echo rc=$?")
      :format(np, dir, np, hp, pp)
    local out = H.run(("env LUA=lua5.4 LUA_PATH='%s' LUA_CPATH='%s' %s")
      :format(package.path, package.cpath, cmd))
    if out:match("rc=77") then H.rmdir(dir) pending("lua-nginx-module not installed") return end
    assert.matches("scraped\nrc=0\n$", out)
    local function answer(name)
      local r = decode(assert(H.slurp(dir .. "/query-" .. name .. ".json")))
      assert.are.equal("success", r.status)
      return r.data.result
    end

    -- every target up
    local up = {}
    for _, s in ipairs(answer("up")) do up[s.metric.job] = tonumber(s.value[2]) end
    assert.are.same({ prometheus = 1, ["memprobe-textfile"] = 1, ["memprobe-openresty"] = 1 }, up)

    -- the textfile: each sample exactly once, with its labels and value
    local want, n = samples(assert(H.slurp(dir .. "/memprobe.prom")))
    assert.is_true(n > 20)
    local got, m = {}, 0
    for _, s in ipairs(answer("textfile")) do
      -- (the job's series also hold up, scrape_*, ALERTS and the recordings)
      if s.metric.__name__:match("^memprobe_") then
        got[key(s.metric)] = tonumber(s.value[2])
        m = m + 1
      end
    end
    assert.are.same(want, got)
    assert.are.equal(n, m)
    for _, s in ipairs(answer("samples")) do
      if s.metric.job == "memprobe-textfile" then assert.are.equal(n, tonumber(s.value[2])) end
    end

    -- /metrics from nginx: the worker's figures, MemTotal as /proc says
    local total = H.parse_kv("/proc/meminfo").MemTotal
    local ngx = {}
    for _, s in ipairs(answer("openresty")) do ngx[key(s.metric)] = tonumber(s.value[2]) end
    assert.are.equal(total, ngx['memprobe_meminfo_bytes{field="MemTotal"}'])
    assert.are.equal(total, ngx['memprobe_free_bytes{field="total"}'])
    assert.are.equal(1, ngx.memprobe_up)
    -- the worker's own series carry its label (worker="0" or "1")
    local worker = {}
    for k, v in pairs(ngx) do
      local name, w = k:match('^(memprobe_[%w_]+){worker="(%d)"}$')
      if name then worker[name] = v assert.matches("^[01]$", w) end
    end
    assert.is_true(worker.memprobe_lua_heap_bytes > 0)
    assert.is_true(worker.memprobe_process_rss_bytes > 0)
    assert.is_not_nil(ngx['memprobe_source_read_error{source="meminfo"}'])

    -- nothing refused (duplicates, out of order), every rule healthy
    for _, s in ipairs(answer("refused")) do assert.are.equal(0, tonumber(s.value[2])) end
    assert.are.equal(1, #answer("refused"))  -- the sum, from the self-scrape
    local rules = decode(H.slurp(dir .. "/rules.json"))
    local count = 0
    for _, g in ipairs(rules.data.groups) do
      for _, r in ipairs(g.rules) do
        assert.are.equal("ok", r.health, r.name)
        count = count + 1
      end
    end
    assert.are.equal(13, count)
    H.rmdir(dir)
  end)
end)
