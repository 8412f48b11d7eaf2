-- udplab.lua: a Wireshark/tshark dissector for the chat protocol of udplab (ChatS and ChatC).
--
-- The chat has no header of its own, so Wireshark cannot recognise it by itself: tell it the
-- server's UDP port, in either way:
--   * the preference "udplab.port" (Edit > Preferences > Protocols > UDPLAB, or
--     tshark -o udplab.port:PORT), or
--   * Decode As: tshark -d udp.port==PORT,udplab (Wireshark: Analyze > Decode As...).
-- Load the file with  wireshark -X lua_script:udplab.lua chat.pcap  (or tshark, the same), or
-- copy it into Wireshark's personal Lua plugins folder (Help > About > Folders).
--
-- Every datagram gets the field udplab.kind:
--   heartbeat  client to server, the heartbeat word (default HB; a trailing \n or \r\n allowed)
--   quit       client to server, the quit word (default quit)
--   message    client to server, anything else: the server sends it on to every client
--   broadcast  server to client: the prefix (default ACK, field udplab.prefix) and then the
--              message (field udplab.message)
-- The words and the prefix are preferences too, for servers started with other ones.

local udplab = Proto("udplab", "udplab group chat")

local f_kind = ProtoField.string("udplab.kind", "Kind")
local f_prefix = ProtoField.string("udplab.prefix", "Prefix")
local f_message = ProtoField.string("udplab.message", "Message")
local f_word = ProtoField.string("udplab.word", "Word")
udplab.fields = { f_kind, f_prefix, f_message, f_word }

udplab.prefs.port = Pref.uint("Server port", 0,
    "The chat server's UDP port (0: only ports given with Decode As / -d udp.port==PORT,udplab)")
udplab.prefs.heartbeat = Pref.string("Heartbeat word", "HB", "What clients send as a heartbeat")
udplab.prefs.quit = Pref.string("Quit word", "quit", "What clients send to leave")
udplab.prefs.prefix = Pref.string("Broadcast prefix", "ACK",
    "What the server puts before every message it sends on")

local udp_port = DissectorTable.get("udp.port")
udp_port:add_for_decode_as(udplab)
local registered = 0

function udplab.prefs_changed()
    if registered ~= 0 then
        udp_port:remove(registered, udplab)
    end
    registered = udplab.prefs.port
    if registered ~= 0 then
        udp_port:add(registered, udplab)
    end
end

-- A word as the server compares it: the payload without one trailing \n or \r\n.
local function word(text)
    return (text:gsub("\r?\n$", ""))
end

function udplab.dissector(buffer, pinfo, tree)
    -- The server's port: the preference, or the port that Decode As matched.
    local server = udplab.prefs.port
    if server == 0 then
        server = pinfo.match_uint
    end
    local text = buffer:raw()
    local subtree = tree:add(udplab, buffer(), "udplab chat")
    local kind, info
    if pinfo.dst_port == server then
        local w = word(text)
        if w == udplab.prefs.heartbeat then
            kind = "heartbeat"
        elseif w == udplab.prefs.quit then
            kind = "quit"
        else
            kind = "message"
        end
        subtree:add(f_kind, kind)
        if kind == "message" then
            subtree:add(f_message, buffer())
            info = "message " .. string.format("%q", text)
        else
            if buffer:len() > 0 then
                subtree:add(f_word, buffer())
            end
            info = kind
        end
    else
        kind = "broadcast"
        subtree:add(f_kind, kind)
        local prefix = udplab.prefs.prefix
        if #prefix > 0 and text:sub(1, #prefix) == prefix then
            subtree:add(f_prefix, buffer(0, #prefix))
            if buffer:len() > #prefix then
                subtree:add(f_message, buffer(#prefix))
            end
            info = "broadcast " .. prefix .. " | " .. string.format("%q", text:sub(#prefix + 1))
        else
            subtree:add(f_message, buffer())
            info = "broadcast " .. string.format("%q", text)
        end
    end
    pinfo.cols.protocol = "UDPLAB"
    pinfo.cols.info = info
    return buffer:len()
end
