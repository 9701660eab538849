--- `snap:save(path, fmt [, opts])`: a finished snapshot written to a
-- file that other tools open. `"heapsnapshot"` is V8's `.heapsnapshot`
-- JSON (Chrome DevTools, memlab), streamed from C in budgeted slices;
-- `"html"` is a self-contained report (`memprobe.htmlreport`). See
-- docs/heap.md, "Export".
-- @module memprobe.save

local core = require "memprobe.core"
local check = require("memprobe.options").check

local M = {}
local unpack = table.unpack or unpack  -- luacheck: ignore 143

local formats = { heapsnapshot = true, html = true }
local spec = {
  heapsnapshot = { max_ms = "number" },
  html = { older = "userdata", title = "string", top = "count",
           modules = "table" },
}

--- A save that advances by `job:step([ms])`: `snap:save(path,
-- "heapsnapshot", {max_ms})` returns one.
-- @type SaveJob
local SaveJob = {}
SaveJob.__index = SaveJob

--- Writes on for up to `ms` milliseconds (default: the job's `max_ms`).
-- @tparam[opt] number ms
-- @treturn boolean|nil true once the file is written and closed, false
-- while it is not; nil, message, errno when a write failed
function SaveJob:step(ms)
  if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms <= 0) then
    error(("bad argument #1 to 'step' (milliseconds > 0 expected, got %s)")
      :format(tostring(ms)), 2)
  end
  if self.res then return unpack(self.res, 1, 3) end
  local ok, msg, code = self.w:step(ms or self.ms)
  if ok == false then return false end
  self.res = { ok, msg, code }
  return ok, msg, code
end

--- The result: true, or nil, message, errno; nil while writing.
-- @treturn boolean|nil
function SaveJob:result()
  if not self.res then return nil end
  return unpack(self.res, 1, 3)
end

--- Bytes written so far, units done, units in all, and the fraction.
-- @treturn number bytes
-- @treturn number done
-- @treturn number total
-- @treturn number fraction in 0..1
function SaveJob:progress()
  local bytes, done, total = self.w:progress()
  if self.res then return bytes, total, total, 1 end
  return bytes, done, total, math.min(done / total, 0.99)
end

--- Stops writing; the file stays as far as it was written.
function SaveJob:close()
  self.w:close()
  if not self.res then self.res = { nil, self.path .. ": closed", 0 } end
end

local function bad(n, msg)
  error(("bad argument #%d to 'save' (%s)"):format(n, msg), 3)
end

--- Writes the snapshot to `path` in format `fmt`.
-- @param snap a finished snapshot (`snapshot()`)
-- @tparam string path the file to write (created or truncated)
-- @tparam string fmt `"heapsnapshot"` or `"html"`
-- @tparam[opt] table opts `max_ms` (heapsnapshot: return a job that
-- writes in slices of that budget); for html `older` (a snapshot to diff
-- against), `title`, `top` (rows per table, default 20), `modules` (the
-- rows of `modules()`, when the caller has them already)
-- @return true, or nil, message, errno when the file cannot be written
-- (a job instead with `max_ms`)
function M.save(snap, path, fmt, opts)
  if type(path) ~= "string" or path == "" then
    bad(1, "path expected, got " .. type(path))
  end
  if not formats[fmt] then
    bad(2, "format must be \"heapsnapshot\" or \"html\", got " .. tostring(fmt))
  end
  opts = check("save", opts, spec[fmt], 3)
  if fmt == "html" then
    return require("memprobe.htmlreport").save(snap, path, opts)
  end
  local w, err, code = core.heap_writer(snap, path)
  if not w then return nil, err, code end
  if opts.max_ms then
    return setmetatable({ w = w, ms = opts.max_ms, path = path }, SaveJob)
  end
  return w:step()
end

--- The format a file name asks for: `"html"` for .html and .htm,
-- `"heapsnapshot"` for .heapsnapshot (and .json), else nil.
-- @tparam string path
-- @treturn ?string
function M.format_of(path)
  local ext = tostring(path):lower():match("%.(%w+)$")
  if ext == "html" or ext == "htm" then return "html" end
  if ext == "heapsnapshot" or ext == "json" then return "heapsnapshot" end
  return nil
end

-- snap:save(path, fmt) on every snapshot.
local meta = debug.getregistry()["memprobe.Snapshot"]
if meta and meta.__index then meta.__index.save = M.save end

return M
