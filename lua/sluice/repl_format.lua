--- The prompt's tables, laid out as psql's default (aligned, border 1)
-- output: headers centred, numbers right-aligned, a value with line
-- breaks on several lines with `+` marks, the last column without
-- trailing padding, a `(N rows)` footer and an empty line after it.
--
-- Values are shown as psql shows them: NULL as an empty cell (M.null
-- changes it, as psql's \pset null), booleans of a query as t / f, bytea
-- as \x hex, int8 beyond 2^53 (int64 cdata) without LuaJIT's LL, floats
-- as the server prints them (the shortest text that reads back the same).  Widths count UTF-8
-- characters, not bytes.
local core = require "sluice.core"

local M = {}

--- The text of NULL cells.
M.null = ""

-- psql's right-aligned types (print.c, column_type_alignment): int2,
-- int4, int8, float4, float8, numeric, oid, xid, xid8, cid, money
local RIGHT = {
  [21] = true, [23] = true, [20] = true, [700] = true, [701] = true,
  [1700] = true, [26] = true, [28] = true, [5069] = true, [29] = true,
  [790] = true,
}
local OID_BYTEA = 17

-- The shortest digits that read back as x: mantissa digits and the
-- decimal exponent of the first one.
local function shortest(x)
  for p = 0, 16 do
    local s = ("%." .. p .. "e"):format(x)
    if tonumber(s) == x then
      local d, e = s:match("^-?(%d[%.%d]*)e([-+]%d+)$")
      return (d:gsub("%.", "")), tonumber(e)
    end
  end
end

-- A float as the server prints it (float8out / float4out, extra_float_digits
-- 1): the shortest exact digits, in exponent form when the exponent is
-- below -4 or at least 15 (6 for real).
local function float_text(x, big)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  local sign = (x < 0 or 1 / x < 0) and "-" or ""
  if x == 0 then return sign .. "0" end
  local d, e = shortest(math.abs(x))
  if e < -4 or e >= big then
    local m = #d > 1 and d:sub(1, 1) .. "." .. d:sub(2) or d
    return ("%s%se%s%02d"):format(sign, m, e < 0 and "-" or "+", math.abs(e))
  elseif e < 0 then
    return sign .. "0." .. ("0"):rep(-e - 1) .. d
  elseif #d <= e + 1 then
    return sign .. d .. ("0"):rep(e + 1 - #d)
  end
  return sign .. d:sub(1, e + 1) .. "." .. d:sub(e + 2)
end

-- A Lua number: integers in full, other values as float8 prints them.
local function number_text(x, oid)
  if oid == 700 then return float_text(x, 6) end
  if oid == 701 then return float_text(x, 15) end
  if x == math.floor(x) and x > -2^53 and x < 2^53 then
    return ("%d"):format(x)
  end
  return float_text(x, 15)
end

local function hex(s)
  return "\\x" .. s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
end

--- The text of value v in a cell; oid is the column's type when the
-- value came from a query (nil for a table built in Lua).
function M.text(v, oid)
  if v == nil or v == core.null then return M.null end
  local t = type(v)
  if t == "string" then
    if oid == OID_BYTEA then return hex(v) end
    return v
  elseif t == "number" then
    return number_text(v, oid)
  elseif t == "boolean" then
    if oid then return v and "t" or "f" end
    return tostring(v)
  elseif t == "cdata" then
    return (tostring(v):gsub("U?LL$", ""))
  end
  return tostring(v)
end

--- Display width of s: its UTF-8 characters.
local function width(s)
  local _, cont = s:gsub("[\128-\191]", "")
  return #s - cont
end
M.width = width

local function lines_of(s)
  if not s:find("\n", 1, true) then return { s } end
  local out = {}
  for piece in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = piece end
  return out
end

--- The lines of a table: names (the header), right (a flag per column:
-- right-aligned), cells (rows of cell texts), title (or nil), footer (or
-- nil).  psql's layout, line by line.
function M.lines(names, right, cells, title, footer)
  local ncol = #names
  local w, split = {}, {}
  for j = 1, ncol do w[j] = width(names[j]) end
  for i, row in ipairs(cells) do
    local srow = {}
    for j = 1, ncol do
      local ls = lines_of(row[j] or "")
      for _, l in ipairs(ls) do
        local lw = width(l)
        if lw > w[j] then w[j] = lw end
      end
      srow[j] = ls
    end
    split[i] = srow
  end
  local out = {}
  local total = ncol - 1
  for j = 1, ncol do total = total + w[j] + 2 end
  if title then
    local pad = math.floor((total - width(title)) / 2)
    out[#out + 1] = (pad > 0 and (" "):rep(pad) or "") .. title
  end
  local head, rule = {}, {}
  for j = 1, ncol do
    local free = w[j] - width(names[j])
    head[j] = " " .. (" "):rep(math.floor(free / 2)) .. names[j]
      .. (" "):rep(math.floor((free + 1) / 2)) .. " "
    rule[j] = ("-"):rep(w[j] + 2)
  end
  out[#out + 1] = table.concat(head, "|")
  out[#out + 1] = table.concat(rule, "+")
  for _, srow in ipairs(split) do
    local height = 1
    for j = 1, ncol do
      if #srow[j] > height then height = #srow[j] end
    end
    for l = 1, height do
      local parts = {}
      for j = 1, ncol do
        local last = j == ncol
        local ls = srow[j]
        local s = ls[l]
        local p
        if s == nil then
          p = last and " " or (" "):rep(w[j] + 2)
        else
          local more = l < #ls
          local pad = (" "):rep(w[j] - width(s))
          if right[j] then
            p = " " .. pad .. s
          else
            p = " " .. s .. ((not last or more) and pad or "")
          end
          if more then
            p = p .. "+"
          elseif not last then
            p = p .. " "
          end
        end
        parts[j] = p
      end
      out[#out + 1] = table.concat(parts, "|")
    end
  end
  if footer then out[#out + 1] = footer end
  return out
end

--- "(1 row)", "(3 rows)".
function M.count(n)
  return ("(%d row%s)"):format(n, n == 1 and "" or "s")
end

--- Print a table (M.lines), then an empty line, as psql does.
function M.print_table(names, right, cells, title, footer)
  local out = M.lines(names, right, cells, title, footer)
  out[#out + 1] = ""
  io.write(table.concat(out, "\n"), "\n")
end

--- Print rows (a query's result, or a list of rows) under the columns
-- cols ({ name1, ..., types = { oid1, ... }, shadowed = ... } as the
-- prompt keeps them (lib.h, SLUICE_REG_COLUMNS),
-- or nil: then the columns are the rows' keys, sorted, and a column of
-- numbers is right-aligned).
function M.print_rows(rows, cols)
  local types = cols and cols.types or {}
  if not cols then
    local seen = {}
    cols = {}
    for _, r in ipairs(rows) do
      for k in pairs(r) do
        if not seen[k] then seen[k] = true; cols[#cols + 1] = k end
      end
    end
    table.sort(cols, function(a, b) return tostring(a) < tostring(b) end)
  end
  local names, right, cells = {}, {}, {}
  for j, c in ipairs(cols) do
    names[j] = tostring(c)
    if types[j] then
      right[j] = RIGHT[types[j]] or false
    else
      local numeric, any = true, false
      for _, r in ipairs(rows) do
        local v = r[c]
        if v ~= nil and v ~= core.null then
          any = true
          if type(v) ~= "number" and type(v) ~= "cdata" then numeric = false end
        end
      end
      right[j] = any and numeric
    end
  end
  local shadowed = cols.shadowed or {}
  for i, r in ipairs(rows) do
    local row = {}
    for j, c in ipairs(cols) do
      local v
      if shadowed[j] then v = shadowed[j][i] else v = r[c] end
      row[j] = M.text(v, types[j])
    end
    cells[i] = row
  end
  M.print_table(names, right, cells, nil, M.count(#rows))
end

return M
