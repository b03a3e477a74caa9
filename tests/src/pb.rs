//! A tiny protobuf encoder/decoder: enough for bootstrap messages and a few task API calls.

/// Appends fields to a message.
#[derive(Default, Clone, Debug)]
pub struct Msg(pub Vec<u8>);

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

impl Msg {
    pub fn new() -> Self {
        Msg(Vec::new())
    }
    /// Varint field (int32/int64/uint32/uint64/bool/enum). Negative int32/int64 use 10 bytes.
    pub fn uint(mut self, field: u32, v: u64) -> Self {
        varint(&mut self.0, (field as u64) << 3);
        varint(&mut self.0, v);
        self
    }
    pub fn int(self, field: u32, v: i64) -> Self {
        self.uint(field, v as u64)
    }
    /// Length-delimited field (string, bytes, embedded message).
    pub fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        varint(&mut self.0, ((field as u64) << 3) | 2);
        varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }
    pub fn msg(self, field: u32, m: &Msg) -> Self {
        self.bytes(field, &m.0)
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `google.protobuf.Any{type_url = 1, value = 2}`.
pub fn any(type_url: &str, value: &[u8]) -> Msg {
    Msg::new().str(1, type_url).bytes(2, value)
}

/// A decoded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

/// A decoded message: fields in wire order.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(u32, Val)>);

impl Fields {
    pub fn varint(&self, field: u32) -> Option<u64> {
        self.0.iter().rev().find_map(|(f, v)| match v {
            Val::Varint(x) if *f == field => Some(*x),
            _ => None,
        })
    }
    pub fn bytes(&self, field: u32) -> Option<&[u8]> {
        self.0.iter().rev().find_map(|(f, v)| match v {
            Val::Bytes(x) if *f == field => Some(x.as_slice()),
            _ => None,
        })
    }
    pub fn string(&self, field: u32) -> Option<String> {
        self.bytes(field).map(|b| String::from_utf8_lossy(b).into_owned())
    }
    pub fn msg(&self, field: u32) -> Option<Fields> {
        self.bytes(field).and_then(|b| decode(b).ok())
    }
    pub fn has(&self, field: u32) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }
}

fn read_varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err("varint too long".into());
        }
    }
}

/// Decodes one message level. Fails on anything that is not well-formed protobuf.
pub fn decode(b: &[u8]) -> Result<Fields, String> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = read_varint(b, &mut i)?;
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err("field number 0".into());
        }
        let val = match key & 7 {
            0 => Val::Varint(read_varint(b, &mut i)?),
            1 => {
                let s = b.get(i..i + 8).ok_or("truncated fixed64")?;
                i += 8;
                Val::Fixed64(u64::from_le_bytes(s.try_into().unwrap()))
            }
            2 => {
                let n = read_varint(b, &mut i)? as usize;
                let s = b.get(i..i + n).ok_or("truncated bytes")?;
                i += n;
                Val::Bytes(s.to_vec())
            }
            5 => {
                let s = b.get(i..i + 4).ok_or("truncated fixed32")?;
                i += 4;
                Val::Fixed32(u32::from_le_bytes(s.try_into().unwrap()))
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((field, val));
    }
    Ok(Fields(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let m = Msg::new().str(1, "abc").uint(2, 300).msg(3, &Msg::new().int(1, -1));
        let f = decode(&m.0).unwrap();
        assert_eq!(f.string(1).unwrap(), "abc");
        assert_eq!(f.varint(2), Some(300));
        assert_eq!(f.msg(3).unwrap().varint(1), Some(u64::MAX));
    }

}
