-- Fails unless the LDoc output (build/docs) documents every public
-- function of memprobe and of its Lua modules, every method of the
-- objects they return (Tracker, Snapshot, Watch, Console) and every
-- console command, each with its parameters and returns; and unless the
-- internals memprobe.core exports for memprobe.heap (heap_*) and the
-- names starting with "_" stay off the pages.
--   lua tools/doccheck.lua build/docs      (with this tree on the paths)
local dir = assert(arg[1], "usage: doccheck.lua DOCDIR")

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- The entries of a module page: name -> { params = n, returns = bool, sig }.
local function entries(page)
  local r = {}
  for name, head, body in page:gmatch('<dt>%s*<a name = "([^"]+)"></a>(.-)</dt>%s*<dd>(.-)</dd>') do
    local params = 0
    local plist = body:match("Parameters:</h3>(.-)</ul>")
    if plist then for _ in plist:gmatch("<li>") do params = params + 1 end end
    local sig = head:gsub("<[^>]+>", ""):gsub("%s+", "")
    r[name] = { params = params, returns = body:find("Returns:", 1, true) ~= nil,
                args = sig:match("%((.*)%)") or "" }
  end
  return r
end

local pages = {}
local function page(modname)
  if pages[modname] == nil then
    local s = slurp(dir .. "/modules/" .. modname .. ".html")
    pages[modname] = s and entries(s) or false
  end
  return pages[modname]
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local internal = function(name) return name:match("^_") or name:match("^heap_") end

-- The arity of the C functions, from the rows of spec/api.lua.
local rows = dofile("spec/api.lua").rows

-- How many parameters fn takes: Lua functions tell (self excluded for a
-- method), C functions through their spec/api.lua row; nil when unknown.
local function arity(fn, name, method)
  local info = debug.getinfo(fn, "Su")
  if info.what ~= "C" then
    local n = info.nparams - (method and 1 or 0)
    return info.isvararg and math.max(n, 1) or n
  end
  local row = rows[name]
  return row and row.arity
end

-- One documented entry: present, with returns, and with a parameter for
-- each one the function takes.
local function check(modname, entry_names, fn, name, method)
  local p = page(modname)
  if not p then return problem("%s: no page", modname) end
  local e
  for _, n in ipairs(entry_names) do e = e or p[n] end
  if not e then return problem("%s: %s is not documented", modname, entry_names[1]) end
  if not e.returns then problem("%s: %s has no returns", modname, entry_names[1]) end
  local n = fn and arity(fn, name, method)
  if n and e.params < n then
    problem("%s: %s takes %d parameter(s), %d documented", modname, entry_names[1], n, e.params)
  elseif not n and e.args ~= "" and e.params == 0 then
    problem("%s: %s shows arguments but documents none", modname, entry_names[1])
  end
end

local memprobe = require "memprobe"
local submodules = { "format", "console", "export", "json", "report", "diff",
                     "watch", "heap", "requires", "settle", "options" }

for name, v in pairs(memprobe) do
  if type(v) == "function" then
    if internal(name) then
      if page("memprobe") and page("memprobe")[name] then
        problem("memprobe: internal %s is listed as public", name)
      end
    else
      check("memprobe", { name, "memprobe." .. name }, v, name)
    end
  end
end
for _, m in ipairs(submodules) do
  local ok, mod = pcall(require, "memprobe." .. m)
  if ok and type(mod) == "table" then
    for name, v in pairs(mod) do
      if type(v) == "function" and not internal(name) then
        check("memprobe." .. m, { name, m .. "." .. name }, v, name)
      end
    end
  end
end

-- Methods, on the page of the module that makes the object.
-- (added, rows and referrers are the snapshot's internals for memprobe.heap)
local internal_methods = { added = true, rows = true, referrers = true }
local function methods(modname, class, obj)
  local mt = getmetatable(obj)
  local index = type(mt.__index) == "table" and mt.__index or mt
  for name, v in pairs(index) do
    if type(v) == "function" and not name:match("^_") and not internal_methods[name] then
      check(modname, { class .. ":" .. name }, v, name, true)
    end
  end
end
local tracker = memprobe.tracker()
local t = memprobe.track()
methods("memprobe", "Tracker", t)
if not tracker then t:untrack() end
local snap = memprobe.snapshot()
methods("memprobe", "Snapshot", snap)
snap:close()
methods("memprobe.watch", "Watch", memprobe.watch())
local console = require("memprobe.console").new()
methods("memprobe.console", "Console", console)

-- Console commands: an entry "commands.NAME" each, with a parameter for
-- each argument its help line shows.
for line in console:run("help"):gmatch("[^\n]+") do
  local name, usage = line:match("^(%l+)%s+(.*)$")
  if name and not line:match(":$") then
    local p = page("memprobe.console")
    local e = p and p["commands." .. name]
    if not e then
      problem("memprobe.console: command '%s' is not documented (commands.%s)", name, name)
    else
      if not e.returns then problem("memprobe.console: commands.%s has no returns", name) end
      local args = usage:match("^([%[<][^:]*):") or usage:match("^(on|off):")
      if args and e.params == 0 then
        problem("memprobe.console: commands.%s takes %s, documents no parameter", name, args)
      end
    end
  end
end

table.sort(problems)
if #problems > 0 then
  io.stderr:write("doccheck:\n  ", table.concat(problems, "\n  "), "\n",
    "document each with an LDoc block (@tparam per parameter, @treturn): in C,\n",
    "'/***' text, '@function NAME', '*/' right above the static int l_NAME;\n",
    "in Lua, '---' comments above 'function M.NAME'. Then run 'make docs'.\n")
  os.exit(1)
end
print("doccheck: every public function, method and console command is documented " ..
      "with its parameters and returns")
