-- scripts/blog_posts.lua (the End Point experiment) runs and every full
-- strategy loads the same rows.
local H = require "helper"

describe("scripts/blog_posts.lua", function()
  it("loads the same posts by each strategy and prints the comparison", function()
    local code, out, err = H.sluice(H.q(H.root .. "/scripts/blog_posts.lua") .. " 300 120 --sample 40 --check")
    assert.are.equal(0, code, err)
    for _, n in ipairs { 300, 120 } do
      for _, s in ipairs { "one by one, autocommit", "one by one, one transaction", "COPY text", "COPY binary" } do
        local line = out:match("\n| " .. n .. " | " .. s:gsub("%p", "%%%0") .. " | ([^\n]*)")
        assert.truthy(line, s .. " for " .. n .. " missing in:\n" .. out)
        local rows, secs, rate = line:match("^(%d+)[^|]*| ([%d.]+) | (%d+) |")
        assert.are.equal(s:find("autocommit") and 40 or n, tonumber(rows))
        assert.truthy(tonumber(secs) > 0 and tonumber(rate) > 0, line)
      end
    end
    assert.truthy(out:find("all strategies loaded identical rows", 1, true), out)
  end)

  it("rejects an unknown argument with its usage", function()
    local code, _, err = H.sluice(H.q(H.root .. "/scripts/blog_posts.lua") .. " --frob")
    assert.are.equal(1, code)
    assert.truthy(err:find("usage: blog_posts.lua [sizes...] [--sample N] [--check]  (unknown argument --frob)", 1, true), err)
  end)
end)
