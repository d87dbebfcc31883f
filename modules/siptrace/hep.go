package siptrace

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/siplua/siplua/engine"
)

// HEPv3 (HEP3 specification, "HEP3 Network Protocol Specification"): the "HEP3" id, the total length,
// then chunks of vendor id (0 = generic), type, length (header included) and payload.
const (
	chunkFamily    = 0x0001 // uint8: 2 IPv4, 10 IPv6
	chunkProto     = 0x0002 // uint8: 17 UDP, 6 TCP
	chunkSrcIP4    = 0x0003
	chunkDstIP4    = 0x0004
	chunkSrcIP6    = 0x0005
	chunkDstIP6    = 0x0006
	chunkSrcPort   = 0x0007 // uint16
	chunkDstPort   = 0x0008
	chunkTimeSec   = 0x0009 // uint32
	chunkTimeUsec  = 0x000a // uint32: microseconds within the second
	chunkProtoType = 0x000b // uint8: 1 SIP
	chunkCaptureID = 0x000c // uint32
	chunkAuthKey   = 0x000e
	chunkPayload   = 0x000f
	chunkCorrID    = 0x0011
)

func appendChunk(b []byte, typ uint16, payload []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(6+len(payload)))
	return append(b, payload...)
}

// encode builds the HEPv3 packet of one SIP message.
func encode(captureID int, authKey string, proto engine.Proto, src, dst netip.AddrPort, t time.Time, msg []byte, corr string) []byte {
	b := make([]byte, 6, 6+120+len(msg)+len(corr)+len(authKey))
	copy(b, "HEP3")
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	v6 := sa.Is6() || da.Is6()
	if v6 {
		b = appendChunk(b, chunkFamily, []byte{10})
	} else {
		b = appendChunk(b, chunkFamily, []byte{2})
	}
	ipProto := byte(17)
	if proto == engine.TCP {
		ipProto = 6
	}
	b = appendChunk(b, chunkProto, []byte{ipProto})
	if v6 {
		s16, d16 := sa.As16(), da.As16()
		b = appendChunk(b, chunkSrcIP6, s16[:])
		b = appendChunk(b, chunkDstIP6, d16[:])
	} else {
		s4, d4 := as4(sa), as4(da)
		b = appendChunk(b, chunkSrcIP4, s4[:])
		b = appendChunk(b, chunkDstIP4, d4[:])
	}
	b = appendChunk(b, chunkSrcPort, binary.BigEndian.AppendUint16(nil, src.Port()))
	b = appendChunk(b, chunkDstPort, binary.BigEndian.AppendUint16(nil, dst.Port()))
	b = appendChunk(b, chunkTimeSec, binary.BigEndian.AppendUint32(nil, uint32(t.Unix())))
	b = appendChunk(b, chunkTimeUsec, binary.BigEndian.AppendUint32(nil, uint32(t.Nanosecond()/1000)))
	b = appendChunk(b, chunkProtoType, []byte{1})
	b = appendChunk(b, chunkCaptureID, binary.BigEndian.AppendUint32(nil, uint32(captureID)))
	if authKey != "" {
		b = appendChunk(b, chunkAuthKey, []byte(authKey))
	}
	if corr != "" {
		b = appendChunk(b, chunkCorrID, []byte(corr))
	}
	b = appendChunk(b, chunkPayload, msg)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)))
	return b
}

// as4 is the IPv4 address (0.0.0.0 for an unknown one).
func as4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}
