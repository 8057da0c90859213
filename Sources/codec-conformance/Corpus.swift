import ConformanceProtos
import StandardProtos

/// Deterministic pseudo-random `AllTypes` messages built with the generated Swift API, for the
/// Swift → Python half of the interop suite. Values lean towards edge cases.
struct Corpus {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed &+ 0x9E37_79B9_7F4A_7C15
    }

    /// SplitMix64.
    private mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    private mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        switch below(6) {
        case 0: return 0
        case 1: return T.max
        case 2: return T.min
        case 3: return T(truncatingIfNeeded: below(300)) &- (T.isSigned ? 150 : 0)
        default: return T(truncatingIfNeeded: next())
        }
    }

    private mutating func double() -> Double {
        switch below(8) {
        case 0: return 0
        case 1: return -0.0
        case 2: return .nan
        case 3: return [.infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude][below(4)]
        case 4: return Double(below(2000)) / 8 - 125
        default:
            let d = Double(bitPattern: next())
            return d.isNaN ? .nan : d
        }
    }

    private mutating func float() -> Float {
        switch below(8) {
        case 0: return 0
        case 1: return -0.0
        case 2: return .nan
        case 3: return [.infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude][below(4)]
        case 4: return Float(below(2000)) / 8 - 125
        default:
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: next()))
            return f.isNaN ? .nan : f
        }
    }

    private mutating func string() -> String {
        let pools: [[Unicode.Scalar]] = [
            Array("abcXYZ019 _-".unicodeScalars),
            Array("é☺€中\u{7F}\u{1}\t\n\"\\/".unicodeScalars),
            ["\u{1F608}", "\u{10FFFF}", "\u{FFFD}", "\u{2028}", "\u{E000}"],
        ]
        var s = String.UnicodeScalarView()
        for _ in 0..<below(12) {
            let pool = pools[below(pools.count)]
            s.append(pool[below(pool.count)])
        }
        return String(s)
    }

    private mutating func bytes(index: Int) -> [UInt8] {
        if index == 1 { return [UInt8](repeating: 0xA5, count: 1 << 20) }  // one 1 MiB value
        return (0..<below(40)).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    private mutating func color() -> Conformance_V1_Color {
        chance(80) ? Conformance_V1_Color.allCases[below(Conformance_V1_Color.allCases.count)]
            : Conformance_V1_Color(rawValue: Int32(below(1000) + 10))
    }

    private mutating func nested(index: Int) -> Conformance_V1_AllTypes.Nested {
        var n = Conformance_V1_AllTypes.Nested()
        if chance(50) { n.a = integer() }
        if chance(50) { n.b = string() }
        if chance(30) { n.color = color() }
        for _ in 0..<(chance(30) ? below(3) : 0) {
            var leaf = Conformance_V1_AllTypes.Leaf()
            leaf.data = bytes(index: -1)
            leaf.n = integer()
            n.leaves.append(leaf)
        }
        return n
    }

    private mutating func timestamp() -> Google_Protobuf_Timestamp {
        var t = Google_Protobuf_Timestamp()
        t.seconds = Int64(below(253_402_300_800 + 62_135_596_800)) - 62_135_596_800
        t.nanos = [0, 1_000_000, 1000, 1, Int32(below(1_000_000_000))][below(5)]
        return t
    }

    private mutating func array<T>(_ make: (inout Corpus) -> T) -> [T] {
        chance(40) ? (0..<below(6)).map { _ in make(&self) } : []
    }

    private mutating func map<K: Hashable, V>(_ key: (inout Corpus) -> K, _ value: (inout Corpus) -> V) -> [K: V] {
        var m = [K: V]()
        if chance(40) { for _ in 0..<below(5) { m[key(&self)] = value(&self) } }
        return m
    }

    mutating func allTypes(index: Int) -> Conformance_V1_AllTypes {
        var m = Conformance_V1_AllTypes()
        guard index > 0 else { return m }  // the first message is empty
        let p = 50
        if chance(p) { m.fInt32 = integer() }
        if chance(p) { m.fInt64 = integer() }
        if chance(p) { m.fUint32 = integer() }
        if chance(p) { m.fUint64 = integer() }
        if chance(p) { m.fSint32 = integer() }
        if chance(p) { m.fSint64 = integer() }
        if chance(p) { m.fFixed32 = integer() }
        if chance(p) { m.fFixed64 = integer() }
        if chance(p) { m.fSfixed32 = integer() }
        if chance(p) { m.fSfixed64 = integer() }
        if chance(p) { m.fFloat = float() }
        if chance(p) { m.fDouble = double() }
        if chance(p) { m.fBool = chance(50) }
        if chance(p) { m.fString = string() }
        if chance(p) || index == 1 { m.fBytes = bytes(index: index) }
        if chance(p) { m.fNested = nested(index: index) }
        if chance(p) { m.fColor = color() }
        if chance(p) { m.fMode = Conformance_V1_AllTypes.Mode(rawValue: Int32(below(3))) }
        if chance(p) { m.fTimestamp = timestamp() }
        if chance(p) {
            var d = Google_Protobuf_Duration()
            d.seconds = Int64(below(631_152_000_000)) - 315_576_000_000
            d.nanos = d.seconds < 0 ? -Int32(below(1_000_000_000)) : Int32(below(1_000_000_000))
            m.fDuration = d
        }
        if chance(p) {
            var mask = Google_Protobuf_FieldMask()
            mask.paths = [["f_int32"], ["user.display_name", "photo_url"], []][below(3)]
            m.fFieldMask = mask
        }
        if chance(p) { m.fEmpty = Google_Protobuf_Empty() }
        if chance(p) { m.fAliased = .uno }
        if chance(p) { m.oInt32 = integer() }
        if chance(p) { m.oInt64 = integer() }
        if chance(p) { m.oUint32 = integer() }
        if chance(p) { m.oUint64 = integer() }
        if chance(p) { m.oSint32 = integer() }
        if chance(p) { m.oSint64 = integer() }
        if chance(p) { m.oFixed32 = integer() }
        if chance(p) { m.oFixed64 = integer() }
        if chance(p) { m.oSfixed32 = integer() }
        if chance(p) { m.oSfixed64 = integer() }
        if chance(p) { m.oFloat = float() }
        if chance(p) { m.oDouble = double() }
        if chance(p) { m.oBool = chance(50) }
        if chance(p) { m.oString = string() }
        if chance(p) { m.oBytes = bytes(index: -1) }
        if chance(p) { m.oNested = nested(index: index) }
        if chance(p) { m.oColor = color() }
        m.rInt32 = array { $0.integer() }
        m.rInt64 = array { $0.integer() }
        m.rUint32 = array { $0.integer() }
        m.rUint64 = array { $0.integer() }
        m.rSint32 = array { $0.integer() }
        m.rSint64 = array { $0.integer() }
        m.rFixed32 = array { $0.integer() }
        m.rFixed64 = array { $0.integer() }
        m.rSfixed32 = array { $0.integer() }
        m.rSfixed64 = array { $0.integer() }
        m.rFloat = array { $0.float() }
        m.rDouble = array { $0.double() }
        m.rBool = array { $0.chance(50) }
        m.rString = array { $0.string() }
        m.rBytes = array { $0.bytes(index: -1) }
        m.rNested = array { $0.nested(index: index) }
        m.rColor = array { $0.color() }
        m.rTimestamp = array { $0.timestamp() }
        m.mStringString = map({ $0.string() }, { $0.string() })
        m.mInt32Int32 = map({ $0.integer() }, { $0.integer() })
        m.mInt64Int64 = map({ $0.integer() }, { $0.integer() })
        m.mUint32Uint32 = map({ $0.integer() }, { $0.integer() })
        m.mUint64Uint64 = map({ $0.integer() }, { $0.integer() })
        m.mSint32Sint32 = map({ $0.integer() }, { $0.integer() })
        m.mSint64Sint64 = map({ $0.integer() }, { $0.integer() })
        m.mFixed32Fixed32 = map({ $0.integer() }, { $0.integer() })
        m.mFixed64Fixed64 = map({ $0.integer() }, { $0.integer() })
        m.mSfixed32Sfixed32 = map({ $0.integer() }, { $0.integer() })
        m.mSfixed64Sfixed64 = map({ $0.integer() }, { $0.integer() })
        m.mBoolBool = map({ $0.chance(50) }, { $0.chance(50) })
        m.mInt32Float = map({ $0.integer() }, { $0.float() })
        m.mInt32Double = map({ $0.integer() }, { $0.double() })
        m.mStringBytes = map({ $0.string() }, { $0.bytes(index: -1) })
        m.mStringNested = map({ $0.string() }, { $0.nested(index: index) })
        m.mStringColor = map({ $0.string() }, { $0.color() })
        if chance(p) {
            m.choice = switch below(9) {
            case 0: .oneofUint32(integer())
            case 1: .oneofNested(nested(index: index))
            case 2: .oneofString(string())
            case 3: .oneofBytes(bytes(index: -1))
            case 4: .oneofBool(chance(50))
            case 5: .oneofUint64(integer())
            case 6: .oneofFloat(float())
            case 7: .oneofDouble(double())
            default: .oneofColor(color())
            }
        }
        if chance(p) { m.fieldName1 = integer() }
        if chance(p) { m.fieldName2 = integer() }
        if chance(p) { m.fieldName3 = integer() }
        if chance(p) { m.fieldName4 = integer() }
        if chance(p) { m.withJsonName = integer() }
        if chance(p) { m.`default` = string() }
        if chance(p) { m.self_ = string() }
        if chance(p) { m.`in` = string() }
        if chance(p) { m.type = string() }
        return m
    }
}
