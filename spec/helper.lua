-- Shared by the specs: fixture roots, an independent reader of "Key: n kB"
-- files, and a way to run a shell command and read its output.
local H = {}

--- The sanitizer runtime under `make asan`, else nil: malloc is ASan's
-- then, and valgrind cannot run the sanitized module.
H.asan = os.getenv("MEMPROBE_ASAN_PRELOAD")
--- True under `make valgrind`, where malloc is valgrind's.
H.valgrind = os.getenv("MEMPROBE_VALGRIND") ~= nil

local root = "spec/fixtures/"

--- The config{} roots of fixture tree `name` (spec/fixtures/<name>).
function H.fixture(name)
  return { proc = root .. name .. "/proc", sys = root .. name .. "/sys" }
end

--- Reads a whole file, or nil.
function H.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- An independent parse of a meminfo-style file: { key = bytes or count }.
function H.parse_kv(path)
  local t = {}
  for line in assert(H.slurp(path), path):gmatch("[^\n]+") do
    local k, v, kb = line:match("^([^:]+):%s*(%d+)%s*(k?B?)%s*$")
    if k and t[k] == nil then
      t[k] = tonumber(v) * (kb == "kB" and 1024 or 1)
    end
  end
  return t
end

--- Output of a shell command, or nil when it failed. The sanitizer
-- runtime preloaded under `make asan` is kept out of the tools it runs
-- (procps free deadlocks under it).
-- Under plain `busted` (.busted gives the paths, the environment has
-- none) the commands get this process's paths, so that the interpreters
-- they start find this tree's modules too.
local paths = os.getenv("LUA_PATH") == nil and os.getenv("LUA_CPATH") == nil and
  ("export LUA_PATH='%s' LUA_CPATH='%s'; "):format(package.path, package.cpath) or ""

function H.run(cmd)
  local p = io.popen(paths .. "unset LD_PRELOAD; " .. cmd .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out ~= "" and out or nil
end

--- The runtime running the specs: "5.1" ... "5.5", or "jit" (the name
-- of its build/ directory).
H.rt = jit and "jit" or _VERSION:match("%d+%.%d+")

--- True on PUC Lua `v` ("5.4") or newer; LuaJIT counts as 5.1. The one
-- version gate of the specs: newer versions get the newer behaviour.
function H.since(v)
  local function num(s)
    local major, minor = s:match("(%d+)%.(%d+)")
    return tonumber(major) * 100 + tonumber(minor)
  end
  return num(_VERSION) >= num(v)
end

--- Sets the incremental collector's pause and, if given, step multiplier
-- (%): 5.5 has collectgarbage("param", ...) in place of setpause and
-- setstepmul.
function H.gc_tune(pause, stepmul)
  if H.since("5.5") then
    collectgarbage("param", "pause", pause)
    if stepmul then collectgarbage("param", "stepmul", stepmul) end
  else
    collectgarbage("setpause", pause)
    if stepmul then collectgarbage("setstepmul", stepmul) end
  end
end

--- Exit status of a shell command (its output is discarded).
function H.status(cmd)
  local p = io.popen(paths .. cmd .. " >/dev/null 2>&1; echo $?")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("(%d+)%s*$"))
end

--- Names of the globals, to check that a module creates none.
function H.globals()
  local g = {}
  for k in pairs(_G) do g[k] = true end
  return g
end

--- The command line of the running interpreter (for child processes).
-- Under `make asan` it brings back the sanitizer runtime H.run leaves out.
function H.interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local preload = os.getenv("MEMPROBE_ASAN_PRELOAD")
  return (preload and "env LD_PRELOAD=" .. preload .. " " or "") .. (arg and arg[i] or "lua")
end

--- True when the specs run as root (live kernel files are 0400).
function H.is_root()
  return (H.run("id -u") or ""):match("^0%s*$") ~= nil
end

--- A fresh temporary directory; `files` maps relative paths to contents.
function H.tmpdir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  for rel, text in pairs(files or {}) do
    local sub = rel:match("^(.*)/[^/]+$")
    if sub then os.execute("mkdir -p '" .. dir .. "/" .. sub .. "'") end
    local f = assert(io.open(dir .. "/" .. rel, "wb"))
    f:write(text)
    f:close()
  end
  return dir
end

--- Removes a directory made by H.tmpdir.
function H.rmdir(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

--- Kilobytes the Lua heap grew by over n calls of fn, with the collector
-- stopped and (on LuaJIT) the trace compiler off and flushed: 0 means fn
-- allocates nothing once warm.
function H.heap_growth(fn, n)
  n = n or 200
  if jit then jit.off() jit.flush() end
  for _ = 1, n do fn() end
  collectgarbage("collect")
  collectgarbage("stop")
  -- A full collection frees the spare call frames of 5.2+: make them again.
  fn()
  local before = collectgarbage("count")
  for _ = 1, n do fn() end
  local after = collectgarbage("count")
  collectgarbage("restart")
  if jit then jit.on() end
  return after - before
end

--- A shell command that runs `args` (a script and its arguments, or
-- `-e 'code'`) under the interpreter running the specs with this tree's
-- modules, behind the optional `wrapper` command (setpriv, unshare).
function H.lua_cmd(args, wrapper)
  return ("%s env LUA_PATH='%s' LUA_CPATH='%s' %s %s"):format(
    wrapper or "", package.path, package.cpath, H.interpreter(), args)
end

--- Output (stdout, stderr and an "exit N" line) of `args` run as the
-- unprivileged uid 65534 under the interpreter running the specs. A
-- checkout in a private (0700) home is out of that user's reach, so the
-- child runs in a world-readable copy of lua/, bin/, the running core and,
-- when it lives in the checkout, the interpreter. `args` is a string, or a
-- function(path, cpath) that builds one for those copies.
function H.nobody(args)
  local copy = H.tmpdir()
  local sh = function(c) assert(os.execute(c), c) end
  sh(("cp -R lua bin '%s/' && mkdir -p '%s/core/memprobe'"):format(copy, copy))
  for tmpl in package.cpath:gmatch("[^;]+") do
    local so = tmpl:gsub("%?", "memprobe/core")
    local f = io.open(so, "rb")
    if f then
      f:close()
      sh(("cp '%s' '%s/core/memprobe/core.so'"):format(so, copy))
      break
    end
  end
  local interp = H.interpreter()
  local exe = interp:match("(%S+)$")
  if exe:find("/", 1, true) and not exe:match("^/usr/") then
    sh(("cp '%s' '%s/lua-interpreter'"):format(exe, copy))
    interp = interp:sub(1, #interp - #exe) .. copy .. "/lua-interpreter"
  end
  sh(("chmod -R a+rX '%s'"):format(copy))
  local path = copy .. "/lua/?.lua;" .. copy .. "/lua/?/init.lua;;"
  local cpath = copy .. "/core/?.so;;"
  if type(args) == "function" then args = args(path, cpath) end
  local p = io.popen(("cd '%s' && setpriv --reuid=65534 --regid=65534 " ..
    "--clear-groups env LUA_PATH='%s' LUA_CPATH='%s' %s %s 2>&1; echo \"exit $?\"")
    :format(copy, path, cpath, interp, args))
  local out = p:read("*a")
  p:close()
  H.rmdir(copy)
  return out
end

--- Output (stdout and stderr) of H.lua_cmd(args, wrapper), followed by
-- an "exit N" line with its exit status.
function H.lua(args, wrapper)
  local p = io.popen(H.lua_cmd(args, wrapper) .. " 2>&1; echo \"exit $?\"")
  local out = p:read("*a")
  p:close()
  return out
end

--- H.lua on a chunk of Lua code (written to a temporary file): what it
-- printed, then "exit N".
function H.chunk(code, wrapper)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(code)
  f:close()
  local out = H.lua("'" .. path .. "'", wrapper)
  os.remove(path)
  return out
end

--- Runs fn in a fork of this interpreter (memprobe_testalloc's fork, or
-- LuaJIT's FFI); returns its exit status (0 when fn returned a true
-- value), or nil when neither is there.
function H.in_child(fn)
  local ok, ta = pcall(require, "memprobe_testalloc")
  if ok and ta.fork then return ta.fork(fn) end
  local found, ffi = pcall(require, "ffi")
  if not found then return nil end
  pcall(ffi.cdef, [[
    int fork(void);
    int waitpid(int pid, int *status, int options);
    void _exit(int status);
  ]])
  local pid = ffi.C.fork()
  if pid == 0 then
    local fine, r = pcall(fn)
    ffi.C._exit(fine and r and 0 or 1)
  end
  local status = ffi.new("int[1]")
  assert(ffi.C.waitpid(pid, status, 0) == pid, "waitpid")
  return math.floor(status[0] / 256)
end

--- Decodes JSON text with lua-cjson, or with dkjson where it is missing.
function H.json_decode(s)
  local ok, cjson = pcall(require, "cjson")
  if ok then return cjson.decode(s) end
  return require("dkjson").decode(s)
end

--- Full collections until the heap stops shrinking (memprobe.settle).
H.settle_gc = require("memprobe.settle").settle

--- Checks each `{ fn, text }` of `cases`: fn raises an error holding text.
function H.assert_raises(cases)
  local assert = require "luassert"
  for i, case in ipairs(cases) do
    local ok, err = pcall(case[1])
    assert.is_false(ok, i)
    assert.is_truthy(tostring(err):find(case[2], 1, true), i .. ": " .. tostring(err))
  end
end

return H
