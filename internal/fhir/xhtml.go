package fhir

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// activeElements may run code or load other documents; FHIR narrative
// forbids them (txt-1) and a server must not store them for a browser to
// render.
var activeElements = map[string]bool{
	"script": true, "style": true, "form": true, "input": true, "button": true, "select": true, "textarea": true,
	"iframe": true, "frame": true, "frameset": true, "object": true, "embed": true, "applet": true,
	"head": true, "body": true, "html": true, "link": true, "meta": true, "base": true, "svg": true, "math": true,
}

// basicElements and basicAttrs are the txt-1 subset: the basic HTML 4.0
// formatting elements and attributes, anchors, images and style attributes.
var basicElements = map[string]bool{
	"a": true, "abbr": true, "acronym": true, "address": true, "b": true, "bdo": true, "big": true, "blockquote": true,
	"br": true, "caption": true, "cite": true, "code": true, "col": true, "colgroup": true, "dd": true, "del": true,
	"dfn": true, "div": true, "dl": true, "dt": true, "em": true, "h1": true, "h2": true, "h3": true, "h4": true,
	"h5": true, "h6": true, "hr": true, "i": true, "img": true, "ins": true, "kbd": true, "li": true, "map": true,
	"area": true, "ol": true, "p": true, "pre": true, "q": true, "s": true, "samp": true, "small": true, "span": true,
	"strike": true, "strong": true, "sub": true, "sup": true, "table": true, "tbody": true, "td": true,
	"tfoot": true, "th": true, "thead": true, "tr": true, "tt": true, "u": true, "ul": true, "var": true,
}

var basicAttrs = map[string]bool{
	"title": true, "style": true, "class": true, "id": true, "lang": true, "dir": true, "accesskey": true,
	"tabindex": true, "span": true, "colspan": true, "rowspan": true, "alt": true, "src": true, "href": true,
	"name": true, "border": true, "cellpadding": true, "cellspacing": true, "width": true, "height": true,
	"align": true, "valign": true, "summary": true, "char": true, "charoff": true, "abbr": true, "axis": true,
	"headers": true, "scope": true, "frame": true, "rules": true, "start": true, "type": true, "value": true,
	"nowrap": true, "bgcolor": true, "size": true, "cite": true, "datetime": true, "compact": true,
	"shape": true, "coords": true, "usemap": true, "hspace": true, "vspace": true, "clear": true, "color": true,
	"face": true, "noshade": true, "hreflang": true, "rel": true, "rev": true, "charset": true, "target": true,
}

// checkXHTML validates Narrative.div text. It returns an error-level
// problem (not well-formed, not a single XHTML div, active content: scripts,
// forms, frames, objects, event handlers, javascript: URLs) and,
// separately, a warning-level one (txt-1 outside the basic element and
// attribute set, txt-2 no text content). Either may be "".
func checkXHTML(s string) (errMsg, warnMsg string) {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	depth, roots := 0, 0
	hasText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "not well-formed XHTML: " + err.Error(), ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			if depth == 0 {
				roots++
				if roots > 1 || name != "div" {
					return "the narrative must be a single <div> element", ""
				}
				if t.Name.Space != xhtmlNS {
					return "the narrative <div> must be in the XHTML namespace " + xhtmlNS, ""
				}
			}
			if t.Name.Space != xhtmlNS && depth > 0 && t.Name.Space != "" {
				warnMsg = firstNonEmpty(warnMsg, "element <"+t.Name.Local+"> is not in the XHTML namespace (txt-1)")
			}
			if activeElements[name] {
				return "element <" + t.Name.Local + "> is not allowed in a narrative (txt-1)", ""
			}
			if !basicElements[name] {
				warnMsg = firstNonEmpty(warnMsg, "element <"+t.Name.Local+"> is outside the basic HTML set (txt-1)")
			}
			for _, a := range t.Attr {
				an := strings.ToLower(a.Name.Local)
				if strings.HasPrefix(an, "on") {
					return "event handler attribute " + a.Name.Local + " is not allowed in a narrative (txt-1)", ""
				}
				if (an == "href" || an == "src") && isScriptURL(a.Value) {
					return "script URLs are not allowed in a narrative (txt-1)", ""
				}
				if a.Name.Space == "xmlns" || an == "xmlns" || a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					continue
				}
				if !basicAttrs[an] {
					warnMsg = firstNonEmpty(warnMsg, "attribute "+a.Name.Local+" is outside the basic HTML set (txt-1)")
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return "text outside the narrative <div>", ""
				}
			} else if strings.TrimSpace(string(t)) != "" {
				hasText = true
			}
		case xml.ProcInst, xml.Directive:
			return "processing instructions and directives are not allowed in a narrative", ""
		}
	}
	if roots == 0 {
		return "the narrative must be a single <div> element", ""
	}
	if !hasText {
		warnMsg = firstNonEmpty(warnMsg, "the narrative has no text content (txt-2)")
	}
	return "", warnMsg
}

func isScriptURL(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	v = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, v)
	return strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") || strings.HasPrefix(v, "data:text/html")
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
