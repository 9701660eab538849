-- Fails when a public function of memprobe or of one of its Lua modules
-- has no entry in the LDoc output (build/docs), so that every function in
-- a luaL_Reg array or a module table is documented.
--   lua tools/doccheck.lua build/docs
local dir = assert(arg[1], "usage: doccheck.lua DOCDIR")

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- anchors LDoc wrote, per page: index.html holds module memprobe
local pages = {
  memprobe = slurp(dir .. "/modules/memprobe.html"),
}
local submodules = { "format", "console", "export", "json", "report", "diff",
                     "watch", "heap", "requires", "settle", "options" }
for _, m in ipairs(submodules) do
  pages["memprobe." .. m] = slurp(dir .. "/modules/memprobe." .. m .. ".html")
end

local missing = {}
local function check(modname, t)
  local page = pages[modname]
  if page == nil then
    missing[#missing + 1] = modname .. " (no page)"
    return
  end
  for name, v in pairs(t) do
    if type(v) == "function" and not name:match("^_")
       and not page:find('name = "' .. name .. '"', 1, true)
       and not page:find('name = "' .. modname:match("[^.]+$") .. "." .. name .. '"', 1, true) then
      missing[#missing + 1] = modname .. "." .. name
    end
  end
end

check("memprobe", require "memprobe")
for _, m in ipairs(submodules) do
  local ok, mod = pcall(require, "memprobe." .. m)
  if ok and type(mod) == "table" then check("memprobe." .. m, mod) end
end

table.sort(missing)
if #missing > 0 then
  io.stderr:write("undocumented public functions:\n  ", table.concat(missing, "\n  "), "\n",
    "document each with an LDoc block: in C, '/***' text, '@function NAME', '*/'\n",
    "right above the static int l_NAME (file starts with '/*** @submodule memprobe */');\n",
    "in Lua, '---' comments above 'function M.NAME'. Then run 'make docs'.\n")
  os.exit(1)
end
print("doccheck: every public function is documented")
