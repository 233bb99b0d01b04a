// Package icondraw draws busmedic's tray icons from one description each, as
// SVG and as PNG at any size, so the scalable sources and the pixmaps the
// panels get cannot drift apart.
package icondraw

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
)

// unit is the side of the square the shapes are described in.
const unit = 64.0

// Icon is one icon: shapes painted in order on a transparent 64×64 square.
type Icon struct {
	Name   string
	Shapes []Shape
}

// Shape is one painted primitive.
type Shape interface {
	// covers reports whether the point (in icon units) is painted.
	covers(x, y float64) bool
	fill() color.NRGBA
	svg() string
	// maskSVG draws the shape in fill for a symbolic icon's mask.
	maskSVG(fill string) string
}

type pt struct{ x, y float64 }

// Circle is a filled disc.
type Circle struct {
	X, Y, R float64
	Color   color.NRGBA
}

// Stroke is a polyline with round caps and joins.
type Stroke struct {
	Points []pt
	Width  float64
	Color  color.NRGBA
}

// Polygon is a filled polygon (even-odd rule).
type Polygon struct {
	Points []pt
	Color  color.NRGBA
}

// RoundRect is a filled rectangle with rounded corners.
type RoundRect struct {
	X, Y, W, H, R float64
	Color         color.NRGBA
}

func (c Circle) covers(x, y float64) bool { return math.Hypot(x-c.X, y-c.Y) <= c.R }
func (c Circle) fill() color.NRGBA        { return c.Color }
func (c Circle) svg() string {
	return fmt.Sprintf(`<circle cx="%g" cy="%g" r="%g" fill="%s"/>`, c.X, c.Y, c.R, hex(c.Color))
}

func (s Stroke) covers(x, y float64) bool {
	for i := 1; i < len(s.Points); i++ {
		if segDist(pt{x, y}, s.Points[i-1], s.Points[i]) <= s.Width/2 {
			return true
		}
	}
	return false
}
func (s Stroke) fill() color.NRGBA { return s.Color }
func (s Stroke) svg() string {
	return fmt.Sprintf(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%g" stroke-linecap="round" stroke-linejoin="round"/>`,
		points(s.Points), hex(s.Color), s.Width)
}

func (p Polygon) covers(x, y float64) bool {
	in := false
	for i, j := 0, len(p.Points)-1; i < len(p.Points); j, i = i, i+1 {
		a, b := p.Points[i], p.Points[j]
		if (a.y > y) != (b.y > y) && x < (b.x-a.x)*(y-a.y)/(b.y-a.y)+a.x {
			in = !in
		}
	}
	return in
}
func (p Polygon) fill() color.NRGBA { return p.Color }
func (p Polygon) svg() string {
	return fmt.Sprintf(`<polygon points="%s" fill="%s"/>`, points(p.Points), hex(p.Color))
}

func (r RoundRect) covers(x, y float64) bool {
	// Distance from the inner rectangle shrunk by R, as for a rounded box.
	dx := math.Max(math.Max(r.X+r.R-x, x-(r.X+r.W-r.R)), 0)
	dy := math.Max(math.Max(r.Y+r.R-y, y-(r.Y+r.H-r.R)), 0)
	return x >= r.X && x <= r.X+r.W && y >= r.Y && y <= r.Y+r.H && math.Hypot(dx, dy) <= r.R
}
func (r RoundRect) fill() color.NRGBA { return r.Color }
func (r RoundRect) svg() string {
	return fmt.Sprintf(`<rect x="%g" y="%g" width="%g" height="%g" rx="%g" fill="%s"/>`, r.X, r.Y, r.W, r.H, r.R, hex(r.Color))
}

func segDist(p, a, b pt) float64 {
	vx, vy := b.x-a.x, b.y-a.y
	t := 0.0
	if l := vx*vx + vy*vy; l > 0 {
		t = math.Max(0, math.Min(1, ((p.x-a.x)*vx+(p.y-a.y)*vy)/l))
	}
	return math.Hypot(p.x-(a.x+t*vx), p.y-(a.y+t*vy))
}

func points(ps []pt) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f,%.2f", p.x, p.y)
	}
	return b.String()
}

func hex(c color.NRGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// SVG returns the icon as an SVG document.
func (ic Icon) SVG() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\n<title>busmedic: %s</title>\n", ic.Name)
	for _, s := range ic.Shapes {
		b.WriteString(s.svg())
		b.WriteByte('\n')
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// symbolicGrey is the colour of symbolic icons as drawn; the desktop
// paints them in the panel's foreground colour instead.
const symbolicGrey = "#bebebe"

// SymbolicSVG returns the icon as a symbolic icon, for the panels that
// draw tray icons in one colour (the "-symbolic" names of the icon theme
// specification): the first shape, the disc, in one grey, with every
// white shape cut out of it and every other shape kept.
//
// The cut is a mask, drawn only with elements GTK and GNOME Shell leave
// alone: they recolour a symbolic icon by forcing the fill of every rect,
// circle and path, so the mask uses polygons, polylines and ellipses, and
// the one circle is the disc, which is to take the foreground colour.
func (ic Icon) SymbolicSVG() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"16\" height=\"16\" viewBox=\"0 0 64 64\">\n<title>busmedic: %s, symbolic</title>\n", ic.Name)
	b.WriteString("<defs><mask id=\"cut\" maskUnits=\"userSpaceOnUse\" x=\"0\" y=\"0\" width=\"64\" height=\"64\">\n")
	b.WriteString(`<polygon points="0,0 64,0 64,64 0,64" fill="#fff"/>` + "\n")
	disc := ic.Shapes[0].(Circle)
	for i, s := range ic.Shapes {
		if i == 0 {
			continue
		}
		// White is cut out; a shape in the disc's colour under one of
		// another colour is that shape's rim, cut out too so that the
		// shape stands apart from the disc; anything else is kept.
		rim := s.fill() == disc.Color && i+1 < len(ic.Shapes) &&
			ic.Shapes[i+1].fill() != white && ic.Shapes[i+1].fill() != disc.Color
		fill := "#fff"
		if s.fill() == white || rim {
			fill = "#000"
		}
		b.WriteString(s.maskSVG(fill))
		b.WriteByte('\n')
	}
	b.WriteString("</mask></defs>\n")
	fmt.Fprintf(&b, `<circle cx="%g" cy="%g" r="%g" fill="%s" mask="url(#cut)"/>`+"\n", disc.X, disc.Y, disc.R, symbolicGrey)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (c Circle) maskSVG(fill string) string {
	return fmt.Sprintf(`<ellipse cx="%g" cy="%g" rx="%g" ry="%g" fill="%s"/>`, c.X, c.Y, c.R, c.R, fill)
}

func (s Stroke) maskSVG(fill string) string {
	return fmt.Sprintf(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%g" stroke-linecap="round" stroke-linejoin="round"/>`,
		points(s.Points), fill, s.Width)
}

func (p Polygon) maskSVG(fill string) string {
	return fmt.Sprintf(`<polygon points="%s" fill="%s"/>`, points(p.Points), fill)
}

// maskSVG draws the rounded rectangle as the rectangle shrunk by its
// radius, stroked twice the radius wide with round joins: the same shape,
// without a rect element.
func (r RoundRect) maskSVG(fill string) string {
	in := []pt{{r.X + r.R, r.Y + r.R}, {r.X + r.W - r.R, r.Y + r.R}, {r.X + r.W - r.R, r.Y + r.H - r.R}, {r.X + r.R, r.Y + r.H - r.R}}
	return fmt.Sprintf(`<polygon points="%s" fill="%s" stroke="%s" stroke-width="%g" stroke-linejoin="round"/>`, points(in), fill, fill, 2*r.R)
}

// Image renders the icon at size×size pixels, antialiased by supersampling.
func (ic Icon) Image(size int) *image.NRGBA {
	const ss = 8 // samples per pixel side: 64 coverage levels
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	scale := unit / float64(size)
	for py := range size {
		for px := range size {
			var r, g, b, a float64
			for sy := range ss {
				for sx := range ss {
					x := (float64(px) + (float64(sx)+0.5)/ss) * scale
					y := (float64(py) + (float64(sy)+0.5)/ss) * scale
					// The topmost shape covering the sample paints it.
					for i := len(ic.Shapes) - 1; i >= 0; i-- {
						if ic.Shapes[i].covers(x, y) {
							c := ic.Shapes[i].fill()
							r += float64(c.R)
							g += float64(c.G)
							b += float64(c.B)
							a++
							break
						}
					}
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, systraySafe(color.NRGBA{
				R: uint8(math.Round(r / a)), G: uint8(math.Round(g / a)), B: uint8(math.Round(b / a)),
				A: uint8(math.Round(a / (ss * ss) * 255)),
			}))
		}
	}
	return img
}

// systraySafe rounds a semi-transparent pixel so that fyne.io/systray
// (v1.12.2) passes it on intact. systray builds the ARGB pixmap with
// byte(r) of the 16-bit premultiplied value that color.RGBA() returns, the
// low byte instead of the high one; that is right only when channel×alpha
// is a multiple of 255. With alpha a multiple of 15 and each channel a
// multiple of 17 it always is (255 = 15×17). Opaque pixels need nothing:
// alpha 255 makes any channel exact. The cost is slightly coarser colors
// on antialiased edges, which nobody sees at 22 px.
func systraySafe(c color.NRGBA) color.NRGBA {
	round := func(v uint8, step float64) uint8 { return uint8(math.Round(float64(v)/step) * step) }
	c.A = round(c.A, 15)
	switch c.A {
	case 0:
		return color.NRGBA{}
	case 255:
		return c
	}
	c.R, c.G, c.B = round(c.R, 17), round(c.G, 17), round(c.B, 17)
	return c
}

// PNG renders the icon at size×size pixels as a PNG file.
func (ic Icon) PNG(size int) ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, ic.Image(size)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var (
	white  = color.NRGBA{0xff, 0xff, 0xff, 0xff}
	green  = color.NRGBA{0x2e, 0x9d, 0x43, 0xff}
	blue   = color.NRGBA{0x2f, 0x6f, 0xd6, 0xff}
	orange = color.NRGBA{0xe8, 0x84, 0x0c, 0xff}
	grey   = color.NRGBA{0x7a, 0x80, 0x8a, 0xff}
	red    = color.NRGBA{0xd9, 0x30, 0x25, 0xff}
)

// Icons returns the tray icons: one per state the tray shows.
func Icons() []Icon {
	return []Icon{
		{Name: "healthy", Shapes: []Shape{
			Circle{32, 32, 30, green},
			Stroke{[]pt{{17, 33}, {27.5, 43.5}, {47, 21}}, 7.5, white},
		}},
		{Name: "recovering", Shapes: append([]Shape{Circle{32, 32, 30, blue}},
			append(arrowArc(32, 32, 17, 200, 330, 5.5, white), arrowArc(32, 32, 17, 20, 150, 5.5, white)...)...)},
		{Name: "attention", Shapes: []Shape{
			Circle{32, 32, 30, orange},
			Stroke{[]pt{{32, 15}, {32, 36}}, 8, white},
			Circle{32, 47.5, 4.8, white},
		}},
		{Name: "busdown", Shapes: []Shape{
			Circle{32, 32, 30, grey},
			// A bus from the front: body, windscreen, wheels.
			RoundRect{17, 14, 30, 32, 5, white},
			RoundRect{21, 18, 22, 13, 2, grey},
			Circle{23.5, 39.5, 2.6, grey},
			Circle{40.5, 39.5, 2.6, grey},
			RoundRect{19, 44, 7, 7, 2, white},
			RoundRect{38, 44, 7, 7, 2, white},
			// Crossed out, with a grey rim so the slash reads on white.
			Stroke{[]pt{{14, 14}, {50, 50}}, 10, grey},
			Stroke{[]pt{{14, 14}, {50, 50}}, 6, red},
		}},
	}
}

// arrowArc is a circular arc from angle a0 to a1 (degrees, clockwise on
// screen) with an arrowhead at a1.
func arrowArc(cx, cy, r, a0, a1, w float64, c color.NRGBA) []Shape {
	var ps []pt
	for a := a0; a < a1; a += 5 {
		rad := a * math.Pi / 180
		ps = append(ps, pt{cx + r*math.Cos(rad), cy + r*math.Sin(rad)})
	}
	rad := a1 * math.Pi / 180
	end := pt{cx + r*math.Cos(rad), cy + r*math.Sin(rad)}
	ps = append(ps, end)
	tx, ty := -math.Sin(rad), math.Cos(rad) // direction of travel
	nx, ny := math.Cos(rad), math.Sin(rad)  // outward
	head := Polygon{[]pt{
		{end.x + tx*8, end.y + ty*8},
		{end.x + nx*7, end.y + ny*7},
		{end.x - nx*7, end.y - ny*7},
	}, c}
	return []Shape{Stroke{ps, w, c}, head}
}
