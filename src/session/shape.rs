//! What a prepared statement looks like to a client: its parameter types and result columns,
//! as PostgreSQL fixes them when the statement is prepared. A client decodes rows with the
//! description it was given, so a statement prepared again on another backend connection (or
//! found there, prepared by another client against another schema) may serve it only if its
//! shape is the same; otherwise the client gets PostgreSQL's own error for a plan whose
//! result type changed, never rows it would misread.

use crate::protocol::{BodyReader, ProtocolError};
use std::sync::{Arc, OnceLock};

/// SQLSTATE and message PostgreSQL reports when a prepared statement's result type changed.
pub const CHANGED_SQLSTATE: &str = "0A000";
pub const CHANGED_MESSAGE: &str = "cached plan must not change result type";

/// The parameter types and result columns of a statement, normalised to what PostgreSQL
/// compares when it revalidates a plan (column names, type OIDs and modifiers): the table a
/// column comes from and its position there are not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(Vec<u8>);

impl Shape {
    /// From the bodies of a statement Describe's ParameterDescription and RowDescription
    /// (`None` for NoData).
    pub fn from_describe(params: &[u8], rows: Option<&[u8]>) -> Result<Self, ProtocolError> {
        let mut key = Vec::with_capacity(params.len() + rows.map_or(1, <[u8]>::len));
        let mut r = BodyReader::new(params);
        let count = r.i16()?;
        for _ in 0..count {
            key.extend_from_slice(&r.i32()?.to_be_bytes());
        }
        let Some(rows) = rows else {
            key.push(b'n');
            return Ok(Shape(key));
        };
        key.push(b'T');
        let mut r = BodyReader::new(rows);
        let columns = r.i16()?;
        key.extend_from_slice(&columns.to_be_bytes());
        for _ in 0..columns {
            key.extend_from_slice(r.cstr("column name")?.as_bytes());
            key.push(0);
            let _table = r.i32()?;
            let _column = r.i16()?;
            let type_oid = r.i32()?;
            let _type_len = r.i16()?;
            let type_modifier = r.i32()?;
            let _format = r.i16()?;
            key.extend_from_slice(&type_oid.to_be_bytes());
            key.extend_from_slice(&type_modifier.to_be_bytes());
        }
        Ok(Shape(key))
    }
}

impl Shape {
    /// As [`Shape::from_describe`]; a description that does not decode is compared as the
    /// bytes it is.
    pub fn of(params: &[u8], rows: Option<&[u8]>) -> Self {
        Self::from_describe(params, rows).unwrap_or_else(|_| {
            let mut raw = params.to_vec();
            raw.push(0xff);
            raw.extend_from_slice(rows.unwrap_or(b"n"));
            Shape(raw)
        })
    }
}

/// The shape of one preparation of a statement, filled in when the backend's Describe reply
/// arrives. Shared by the client statement it was prepared for and the backend connection's
/// record of it, so "the same preparation" is a pointer comparison.
#[derive(Debug, Clone, Default)]
pub struct ShapeCell(Arc<OnceLock<Shape>>);

impl ShapeCell {
    pub fn get(&self) -> Option<&Shape> {
        self.0.get()
    }

    pub fn set(&self, shape: Shape) {
        let _ = self.0.set(shape);
    }

    pub fn is(&self, other: &ShapeCell) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether a client that knows `self` may use the backend statement whose preparation is
    /// `there`. `None` while either is still to be described.
    pub fn fits(&self, there: &ShapeCell) -> Option<bool> {
        if self.is(there) {
            return Some(true);
        }
        match (self.get(), there.get()) {
            (Some(known), Some(found)) => Some(known == found),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn params(oids: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i16(oids.len() as i16);
        for oid in oids {
            b.put_u32(*oid);
        }
        b
    }

    /// RowDescription body: (name, table OID, type OID, type modifier) per column.
    fn rows(columns: &[(&str, u32, u32, i32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i16(columns.len() as i16);
        for (i, (name, table, oid, typmod)) in columns.iter().enumerate() {
            b.put_slice(name.as_bytes());
            b.put_u8(0);
            b.put_u32(*table);
            b.put_i16(i as i16 + 1);
            b.put_u32(*oid);
            b.put_i16(4);
            b.put_i32(*typmod);
            b.put_i16(0);
        }
        b
    }

    fn shape(p: &[u32], r: Option<&[(&str, u32, u32, i32)]>) -> Shape {
        let r = r.map(rows);
        Shape::from_describe(&params(p), r.as_deref()).unwrap()
    }

    #[test]
    fn what_counts_as_the_same_shape() {
        let real = shape(&[23], Some(&[("x", 16384, 700, -1)]));
        // The table recreated with the same columns: PostgreSQL keeps the plan.
        assert_eq!(real, shape(&[23], Some(&[("x", 99999, 700, -1)])));
        // A column's type, modifier or name, a parameter's type, the column count.
        assert_ne!(real, shape(&[23], Some(&[("x", 16384, 23, -1)])));
        assert_ne!(real, shape(&[23], Some(&[("x", 16384, 700, 8)])));
        assert_ne!(real, shape(&[23], Some(&[("y", 16384, 700, -1)])));
        assert_ne!(real, shape(&[20], Some(&[("x", 16384, 700, -1)])));
        assert_ne!(
            real,
            shape(&[23], Some(&[("x", 16384, 700, -1), ("y", 16384, 23, -1)]))
        );
        // No rows at all.
        assert_ne!(shape(&[], None), shape(&[], Some(&[])));
        assert!(Shape::from_describe(&[0, 1], None).is_err());
    }

    #[test]
    fn cells_fit_by_preparation_or_by_shape() {
        let mine = ShapeCell::default();
        assert_eq!(mine.fits(&mine.clone()), Some(true), "the same preparation");
        let there = ShapeCell::default();
        assert_eq!(mine.fits(&there), None, "not described yet");
        mine.set(shape(&[], Some(&[("x", 1, 700, -1)])));
        there.set(shape(&[], Some(&[("x", 2, 700, -1)])));
        assert_eq!(mine.fits(&there), Some(true));
        let changed = ShapeCell::default();
        changed.set(shape(&[], Some(&[("x", 1, 23, -1)])));
        assert_eq!(mine.fits(&changed), Some(false));
    }
}
