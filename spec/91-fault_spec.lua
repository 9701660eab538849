-- Out of memory at every allocation of every public function: each call
-- either succeeds or raises "not enough memory", and the state keeps
-- working (the same call then gives the same result); with a tracker
-- installed over the failing allocator, its counts stay consistent.
local memprobe = require "memprobe"
local H = require "spec.helper"
local api = require "spec.api"
local F = require "spec.fault"

local unpack = api.unpack

describe("memprobe under allocation failure", function()
  after_each(function() memprobe.config{} end)

  local names = {}
  for name, row in pairs(api.rows) do
    if row.fault ~= false then names[#names + 1] = name end
  end
  table.sort(names)

  for _, name in ipairs(names) do
    for i, args in ipairs(api.rows[name].ok) do
      it(("%s (call %d) succeeds or raises 'not enough memory' at every allocation")
        :format(name, i), function()
        if not F.available then pending("memprobe_testalloc not built (make testalloc)") return end
        local fixture = H.fixture("linux-6.18")
        local fn = function(...)
          memprobe.config(fixture)
          return memprobe[name](...)
        end
        -- Each run gets its own copies of the table arguments.
        local fresh = function()
          local copy = { n = args.n }
          for j = 1, args.n do
            local v = args[j]
            if type(v) == "table" then
              local c = {}
              for k, x in pairs(v) do c[k] = x end
              v = c
            end
            copy[j] = v
          end
          return copy
        end
        local row = api.rows[name]
        local want = { fn(unpack(fresh(), 1, args.n)) }
        local allocs = F.sweep(fn, fresh())
        assert.is_true(allocs >= 1)
        assert.are.same(api.shape(row, want), api.shape(row, { fn(unpack(fresh(), 1, args.n)) }))
        -- Again under a tracker: after every run, live == the collector's
        -- count and failed grows by the refusals.
        -- (The full collections free interned strings the call then makes
        -- again: its allocation count may differ from the plain sweep's.)
        assert.is_true(F.sweep(fn, fresh(), nil, { tracker = true }) >= 1)
      end)
    end
  end
end)
